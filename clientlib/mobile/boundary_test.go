package mobile_test

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/clientlib/mobile"
)

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"nil", nil, "", ""},
		// What Java hands back: an Exception whose message is the text.
		{"java", errors.New("coffer:security: the server misbehaved (wrap check failed): x"), "security", "the server misbehaved (wrap check failed): x"},
		{"java with class", errors.New("java.lang.Exception: coffer:not_found: no such resource"), "not_found", "no such resource"},
		{"plain", errors.New("disk full"), "internal", "disk full"},
		{"not a code", errors.New("coffer:Not A Code: x"), "internal", "coffer:Not A Code: x"},
		{"qr payload is not a code", errors.New("coffer:v1:alice:abc"), "internal", "coffer:v1:alice:abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mobile.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := mobile.ErrorMessage(tt.err); got != tt.wantMsg {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMsg)
			}
		})
	}
}

// failingStore fails every call the way an app's store might.
type failingStore struct {
	getErr   error
	getPanic bool
}

func (s failingStore) Put(string, []byte) error { return errors.New("keychain locked") }
func (s failingStore) Get(string) ([]byte, error) {
	if s.getPanic {
		panic("bug in the app's store")
	}
	return nil, s.getErr
}
func (s failingStore) Delete(string) error { return errors.New("keychain locked") }

func TestKeyStoreErrors(t *testing.T) {
	// "Not found" as an error with the code, as Java may throw it, or as
	// clientlib's own ErrNotFound from a Go store: an empty store.
	for _, notFound := range []error{errors.New("coffer:not_found: no such key"), clientlib.ErrNotFound} {
		c, err := mobile.NewClient("http://127.0.0.1:1", failingStore{getErr: notFound})
		if err != nil || c.HasIdentity() {
			t.Fatalf("store answering %v: %v, identity %v", notFound, err, c.HasIdentity())
		}
	}
	_, err := mobile.NewClient("http://127.0.0.1:1", failingStore{getErr: errors.New("keychain locked")})
	wantCode(t, err, mobile.CodeKeyStore)

	_, err = mobile.NewClient("http://127.0.0.1:1", failingStore{getPanic: true})
	wantCode(t, err, mobile.CodeInternal)
	if !strings.Contains(err.Error(), "panic") {
		t.Fatalf("a panic in the store: %v", err)
	}

	c, err := mobile.NewClient("http://127.0.0.1:1", failingStore{getErr: clientlib.ErrNotFound})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Register("alice"), mobile.CodeKeyStore)

	_, err = mobile.NewClient("ftp://x", newMemStore())
	wantCode(t, err, mobile.CodeInvalid)
	_, err = mobile.NewClient("http://127.0.0.1:1", nil)
	wantCode(t, err, mobile.CodeInvalid)
}

func TestEmptyBlobIsAbsent(t *testing.T) {
	ks := newMemStore()
	ks.m["identity"] = []byte{}
	c, err := mobile.NewClient("http://127.0.0.1:1", ks)
	if err != nil || c.HasIdentity() {
		t.Fatalf("an empty identity blob: %v, identity %v", err, c.HasIdentity())
	}
}

// The zero values that Java's `new Client()` and friends make must fail
// cleanly, not crash the app.
func TestZeroValues(t *testing.T) {
	var c mobile.Client
	wantCode(t, c.Register("alice"), mobile.CodeInvalid)
	_, err := c.GetBytes("g", "r", nil, nil)
	wantCode(t, err, mobile.CodeInvalid)
	if c.HasIdentity() || c.Handle() != "" || c.AccountID() != "" {
		t.Fatal("a zero Client claims an identity")
	}
	var nilClient *mobile.Client
	_, err = nilClient.Groups()
	wantCode(t, err, mobile.CodeInvalid)
	var l *mobile.GroupList
	if l.Len() != 0 {
		t.Fatal("nil list has elements")
	}
	_, err = l.Get(0)
	wantCode(t, err, mobile.CodeInvalid)
	var cancel *mobile.Cancel
	cancel.Cancel()
	if cancel.IsCanceled() {
		t.Fatal("a nil Cancel is cancelled")
	}
}

func TestPanickingProgress(t *testing.T) {
	srv := MustServer(t)
	alice, _ := MustClient(t, srv, "alice")
	g := MustGroup(t, alice)
	_, err := alice.PutBytes(g, randomBytes(256<<10), &mobile.Meta{Name: "x"}, panickingProgress{}, nil)
	wantCode(t, err, mobile.CodeCanceled)
	if !strings.Contains(err.Error(), "panic") {
		t.Fatalf("the panic is not named: %v", err)
	}
}

type panickingProgress struct{}

func (panickingProgress) OnProgress(done, total int64) error { panic("bug in the app's callback") }

func TestSecurityCodeWins(t *testing.T) {
	// A security error that wraps a key_changed error is a security error.
	inner := &coffer.Error{Code: coffer.EKEYCHANGED, Message: "bob's keys changed"}
	err := mobile.WrapForTest(coffer.Security("contact-key", inner))
	wantCode(t, err, mobile.CodeSecurity)
	if !strings.Contains(err.Error(), "bob's keys changed") || !coffer.IsSecurity(err) {
		t.Fatalf("%v", err)
	}
}

// A server cannot make an error look like a failed client-side check, nor
// inject a malformed code into the "coffer:<code>:" text.
func TestServerCannotForgeCodes(t *testing.T) {
	for _, code := range []coffer.Code{coffer.ESECURITY, "canceled", "evil: code", ""} {
		err := mobile.WrapForTest(&coffer.Error{Code: code, Message: "trust me"})
		wantCode(t, err, mobile.CodeInternal)
	}
	wantCode(t, mobile.WrapForTest(&coffer.Error{Code: coffer.ENOTFOUND, Message: "gone"}), mobile.CodeNotFound)
}

// Every exported function and method starts by deferring a recover, so no
// Go panic crosses into Java or Objective-C, where it would kill the app.
func TestEveryExportedFuncGuarded(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() {
				continue
			}
			if fn.Recv != nil && !exportedRecv(fn.Recv.List[0].Type) {
				continue // a method of an unexported adapter type
			}
			n++
			if !startsWithGuard(fn) {
				t.Errorf("%s: %s does not start with `defer guard(&err)`, `defer guardQuiet()` or a deferred recover", fset.Position(fn.Pos()), fn.Name)
			}
		}
	}
	if n < 30 {
		t.Fatalf("found only %d exported functions: is the test looking in the right place?", n)
	}
}

func exportedRecv(e ast.Expr) bool {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	id, ok := e.(*ast.Ident)
	return ok && id.IsExported()
}

func startsWithGuard(fn *ast.FuncDecl) bool {
	if fn.Body == nil || len(fn.Body.List) == 0 {
		return false
	}
	d, ok := fn.Body.List[0].(*ast.DeferStmt)
	if !ok {
		return false
	}
	switch f := d.Call.Fun.(type) {
	case *ast.Ident:
		return f.Name == "guard" || f.Name == "guardQuiet"
	case *ast.FuncLit:
		found := false
		ast.Inspect(f.Body, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "recover" {
					found = true
				}
			}
			return true
		})
		return found
	}
	return false
}
