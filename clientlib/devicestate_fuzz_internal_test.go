package clientlib

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
)

func sampleDeviceState() *deviceState {
	return &deviceState{
		Account:   coffer.AccountID{1, 2, 3},
		LogKey:    "coffer.example+1234abcd+AQID",
		Witnesses: []string{"w1+0000+AA", "w2+0001+BB"},
		Quorum:    1,
		Contacts: []ContactPin{
			{Handle: "bob", Account: coffer.AccountID{4}, Genesis: [32]byte{5}},
			{Handle: "carol", Account: coffer.AccountID{6}, Genesis: [32]byte{7}},
		},
		Groups: []GroupFloor{{Group: coffer.GroupID{1}, Seq: 3, Head: [32]byte{8}}, {Group: coffer.GroupID{2}, Seq: 1, Head: [32]byte{9}}},
	}
}

// TestDeviceStateEncoding: the encoding round-trips, and the parser takes
// exactly one encoding per state.
func TestDeviceStateEncoding(t *testing.T) {
	b, err := sampleDeviceState().marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseDeviceState(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.marshal()
	if !bytes.Equal(again, b) {
		t.Fatal("the state does not round-trip")
	}
	bad := map[string]func(s *deviceState){
		"unsorted contacts": func(s *deviceState) { s.Contacts[0], s.Contacts[1] = s.Contacts[1], s.Contacts[0] },
		"duplicate contact": func(s *deviceState) { s.Contacts[1] = s.Contacts[0] },
		"unsorted groups":   func(s *deviceState) { s.Groups[0], s.Groups[1] = s.Groups[1], s.Groups[0] },
		"duplicate group":   func(s *deviceState) { s.Groups[1] = s.Groups[0] },
		"seq 0":             func(s *deviceState) { s.Groups[0].Seq = 0 },
		"no genesis":        func(s *deviceState) { s.Contacts[0].Genesis = [32]byte{} },
		"bad handle":        func(s *deviceState) { s.Contacts[0].Handle = "B" },
		"quorum too high":   func(s *deviceState) { s.Quorum = 3 },
		"no account":        func(s *deviceState) { s.Account = coffer.AccountID{} },
	}
	for name, f := range bad {
		s := sampleDeviceState()
		f(s)
		b, err := s.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseDeviceState(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := parseDeviceState(append(b, 0)); err == nil {
		t.Error("trailing byte: parsed")
	}
	for i := range b {
		if _, err := parseDeviceState(b[:i]); err == nil {
			t.Fatalf("truncated at %d: parsed", i)
		}
	}
}

// TestMergeDeviceState: this device's pins win, the stored ones it lacks
// are kept, and each group keeps its highest head.
func TestMergeDeviceState(t *testing.T) {
	prev := sampleDeviceState()
	local := &deviceState{Account: prev.Account,
		Contacts: []ContactPin{{Handle: "bob", Account: coffer.AccountID{9}, Genesis: [32]byte{9}}},
		Groups:   []GroupFloor{{Group: coffer.GroupID{1}, Seq: 2, Head: [32]byte{1}}, {Group: coffer.GroupID{2}, Seq: 5, Head: [32]byte{2}}}}
	m := mergeDeviceState(local, prev)
	if len(m.Contacts) != 2 || m.Contacts[0].Account != (coffer.AccountID{9}) || m.Contacts[1].Handle != "carol" {
		t.Fatalf("contacts %+v", m.Contacts)
	}
	if len(m.Groups) != 2 || m.Groups[0].Seq != 3 || m.Groups[1].Seq != 5 {
		t.Fatalf("groups %+v", m.Groups)
	}
	if m.LogKey != prev.LogKey || len(m.Witnesses) != 2 {
		t.Fatalf("keys %+v", m)
	}
	b, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseDeviceState(b); err != nil {
		t.Fatalf("a merged state does not parse: %v", err)
	}
}

// FuzzParseDeviceState: the decoder of the decrypted device state never
// panics, and whatever it accepts re-encodes to the same bytes.
func FuzzParseDeviceState(f *testing.F) {
	b, _ := sampleDeviceState().marshal()
	f.Add(b)
	empty, _ := (&deviceState{Account: coffer.AccountID{1}}).marshal()
	f.Add(empty)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseDeviceState(data)
		if err != nil {
			return
		}
		again, err := s.marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical encoding (%v)", err)
		}
	})
}
