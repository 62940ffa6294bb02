package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// The C2SP tlog-witness wire format of add-checkpoint. The request body is
//
//	old <size>
//	<base64 consistency proof hash>   (zero or more lines)
//	<blank line>
//	<the log's signed checkpoint note>
//
// A 200 answer is the cosignature line(s); a 409 answer is the witness's
// size in decimal (Content-Type text/x.tlog.size).

// Paths and content types of the protocol.
const (
	AddCheckpointPath = "/add-checkpoint"
	sizeContentType   = "text/x.tlog.size"
	// RefusalHeader names the Rule of a 422 answer.
	RefusalHeader = "Coffer-Witness-Refusal"

	maxRequestBody = 1 << 20
	maxProofLines  = 128
)

// FormatAddCheckpoint encodes an add-checkpoint request body.
func FormatAddCheckpoint(old int64, proof []tlog.Hash, signed string) []byte {
	var b bytes.Buffer
	b.WriteString("old " + strconv.FormatInt(old, 10) + "\n")
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.WriteString(signed)
	return b.Bytes()
}

// ParseAddCheckpoint decodes an add-checkpoint request body.
func ParseAddCheckpoint(body []byte) (old int64, proof []tlog.Hash, signed string, err error) {
	rest := string(body)
	line, rest, ok := strings.Cut(rest, "\n")
	n, found := strings.CutPrefix(line, "old ")
	if !ok || !found {
		return 0, nil, "", errors.New("the request must start with an old line: old <size>")
	}
	old, err = strconv.ParseInt(n, 10, 64)
	if err != nil || old < 0 || strconv.FormatInt(old, 10) != n {
		return 0, nil, "", errors.New("malformed old size")
	}
	for {
		line, rest, ok = strings.Cut(rest, "\n")
		if !ok {
			return 0, nil, "", errors.New("the proof must end with a blank line")
		}
		if line == "" {
			break
		}
		if len(proof) == maxProofLines {
			return 0, nil, "", errors.New("the consistency proof is too long")
		}
		h, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != line {
			return 0, nil, "", errors.New("a consistency proof line is not a base64 hash")
		}
		proof = append(proof, tlog.Hash(h))
	}
	if rest == "" {
		return 0, nil, "", errors.New("the request has no checkpoint")
	}
	return old, proof, rest, nil
}

// RemoteError is a witness's answer other than 200 and 409.
type RemoteError struct {
	Status int
	Rule   Rule // for 422: the refusal's rule, when the witness names one
	Msg    string
}

func (e *RemoteError) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("witness answered %d (%s): %s", e.Status, e.Rule, e.Msg)
	}
	return fmt.Sprintf("witness answered %d: %s", e.Status, e.Msg)
}

// Push sends one add-checkpoint request to the witness at base and returns
// the cosignature line(s). A 409 answer is a *ConflictError naming the
// witness's size; others are *RemoteError.
func Push(ctx context.Context, hc *http.Client, base string, old int64, proof []tlog.Hash, signed string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+AddCheckpointPath,
		bytes.NewReader(FormatAddCheckpoint(old, proof, signed)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return string(b), nil
	case http.StatusConflict:
		s := strings.TrimSuffix(string(b), "\n")
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), sizeContentType) {
			return "", &RemoteError{Status: resp.StatusCode, Msg: "a 409 answer without a size"}
		}
		return "", &ConflictError{Size: n, Fork: resp.Header.Get(RefusalHeader) == string(RuleSameSize)}
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 512 {
		msg = msg[:512]
	}
	return "", &RemoteError{Status: resp.StatusCode, Rule: Rule(resp.Header.Get(RefusalHeader)), Msg: msg}
}
