package e2e_test

import "testing"

// The resource-log attacks of tamper_resourcelog_test.go on a deployment of
// three processes, cofferd and two witnesses, with clients that require a
// quorum of 2 (issue 12's acceptance: deletion and backdating). A leaf the
// server appends for a writer who may no longer write is refused by both
// witnesses, so no cosigned checkpoint ever holds it; the readers refuse
// the version themselves, whatever checkpoint the server shows them.

// refusedByWitnesses: on a witnessed fixture, both witnesses refuse the
// checkpoints that hold log_entries row entry (a resource leaf that breaks
// the resource log's rules) and never cosign one. Without witnesses there
// is nothing to check.
func (f *resourceLogFixture) refusedByWitnesses(t *testing.T, entry int64) {
	t.Helper()
	if f.dep != nil {
		f.dep.wantWitnessesRefuse(t, f.db, entry, "resource")
	}
}

// Deletion: a deleted resource the server keeps serving is a security
// error for every reader.
func TestFreshnessResourceDeletedServedAgain(t *testing.T) {
	t.Parallel()
	testResourceLogDeletedServedAgain(t, newWitnessedResourceLog(t))
}

// Deletion by an admin, served again to the resource's author.
func TestFreshnessResourceDeletedByAdminServedToAuthor(t *testing.T) {
	t.Parallel()
	testResourceLogDeletedByAdminServedToAuthor(t, newWitnessedResourceLog(t))
}

// Deletion's twin: a version the server replaces with another one its
// author signed.
func TestFreshnessResourceSecondSignedVersion(t *testing.T) {
	t.Parallel()
	testResourceLogSecondSignedVersion(t, newWitnessedResourceLog(t))
}

// Backdating: a removed writer publishing with the server's help.
func TestFreshnessResourceBackdatedByRemovedWriter(t *testing.T) {
	t.Parallel()
	testResourceLogBackdatedByRemovedWriter(t, newWitnessedResourceLog(t))
}

// Backdating by a member who left.
func TestFreshnessResourceBackdatedByLeaver(t *testing.T) {
	t.Parallel()
	testResourceLogBackdatedByLeaver(t, newWitnessedResourceLog(t))
}

// Backdating by a writer demoted to reader.
func TestFreshnessResourceBackdatedByDemotedWriter(t *testing.T) {
	t.Parallel()
	testResourceLogBackdatedByDemotedWriter(t, newWitnessedResourceLog(t))
}
