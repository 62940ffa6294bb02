package resolve_test

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/cmd/coffer/internal/resolve"
)

func TestByName(t *testing.T) {
	items := []resolve.Item{
		{ID: "id-1", Name: "project x"},
		{ID: "id-2", Name: "holidays"},
		{ID: "id-3", Name: "project x"},
		{ID: "id-4", Name: ""},
	}
	tests := []struct {
		name     string
		want     int
		wantCode coffer.Code
		wantText []string
	}{
		{"holidays", 1, "", nil},
		{"project x", -1, coffer.EINVALID, []string{"2 groups", "id-1", "id-3"}},
		{"nope", -1, coffer.ENOTFOUND, []string{`"nope"`, "coffer group ls"}},
		{"", -1, coffer.EINVALID, nil}, // an unnamed item is never matched by chance
		{"Holidays", -1, coffer.ENOTFOUND, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve.ByName("group", tt.name, "coffer group ls", items)
			if got != tt.want || coffer.ErrorCode(err) != tt.wantCode {
				t.Fatalf("ByName = %d, %v; want %d, code %q", got, err, tt.want, tt.wantCode)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestSafetyNumber(t *testing.T) {
	const number = "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890"
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"split by the shell", strings.Fields(number), false},
		{"quoted", []string{number}, false},
		{"without spaces", []string{strings.ReplaceAll(number, " ", "")}, false},
		{"with dashes", []string{strings.ReplaceAll(number, " ", "-")}, false},
		{"a QR payload", []string{"coffer:v1:bob:Yo3Qe10olQZVcVTs1a_Ph5dxbtzuh-oQIdLKio5vbbw"}, false},
		{"a group short", strings.Fields(number)[:11], true},
		{"a digit too many", append(strings.Fields(number), "1"), true},
		{"letters", []string{strings.Replace(number, "1", "l", 1)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve.SafetyNumber(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SafetyNumber = %q, %v; want error %v", got, err, tt.wantErr)
			}
			if err != nil && coffer.ErrorCode(err) != coffer.EINVALID {
				t.Fatalf("error code %q, want invalid", coffer.ErrorCode(err))
			}
		})
	}
}
