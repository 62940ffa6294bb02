package api_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// readHexVector reads a vector file of testdata/commitpage,
// testdata/resourceanswer or testdata/logproofs: "key: value" lines (expect, comment), then the
// encoding under test in hex, possibly over several lines.
func readHexVector(t *testing.T, path string) (map[string]string, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ": "); ok && body.Len() == 0 {
			fields[k] = v
		} else if line != "" {
			body.WriteString(line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	encoded, err := hex.DecodeString(body.String())
	if err != nil {
		t.Fatal(err)
	}
	return fields, encoded
}
