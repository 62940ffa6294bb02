package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer"
)

// decode reads one JSON value from the request body into v, refusing bodies
// over limit bytes, unknown fields, trailing data and wrong types, each with
// a message that tells the caller what to fix.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return coffer.Errorf(coffer.EINVALID, "Content-Type must be application/json")
		}
	}
	if pb, ok := r.Body.(*progressBody); ok {
		pb.wholeBy()
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err, limit)
		}
		return coffer.Errorf(coffer.EINVALID, "request body must contain a single JSON value")
	}
	return nil
}

func jsonError(err error, limit int64) error {
	var (
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
		maxBytes *http.MaxBytesError
		b64      base64.CorruptInputError
		ce       *coffer.Error
	)
	switch {
	case isSlowBody(err):
		return slowBodyProblem()
	case errors.As(err, &maxBytes):
		return coffer.Errorf(coffer.ETOOLARGE, "request body is larger than %d bytes", limit)
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &syntax):
		return coffer.Errorf(coffer.EINVALID, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		return coffer.Errorf(coffer.EINVALID, "field %q must be of JSON type %s", typeErr.Field, jsonKind(typeErr.Type.String()))
	case errors.As(err, &b64):
		return coffer.Errorf(coffer.EINVALID, "invalid base64 at input byte %d: byte fields use standard padded base64", int64(b64))
	case errors.Is(err, io.EOF):
		return coffer.Errorf(coffer.EINVALID, "request body is empty: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return coffer.Errorf(coffer.EINVALID, "malformed JSON: unexpected end of body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return coffer.Errorf(coffer.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return coffer.Errorf(coffer.EINVALID, "malformed JSON body")
}

func jsonKind(goType string) string {
	switch {
	case goType == "[]uint8":
		return "string (base64)"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "number"
	case goType == "string", strings.HasPrefix(goType, "coffer."):
		return "string"
	case goType == "bool":
		return "boolean"
	}
	return fmt.Sprintf("matching %s", goType)
}
