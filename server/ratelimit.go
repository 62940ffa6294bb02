package server

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/httprate"

	"github.com/cofferhq/coffer"
)

// Rate limits are scoped to who is asking. An authenticated caller is
// limited per account, wherever it connects from: many users behind one NAT
// or proxy never share a budget, and one account cannot spread its requests
// over many addresses. Anonymous callers (registration, login, the public
// log) are limited per client address. A request is one unit whatever it
// asks for, so a batch of log proofs counts once.
//
// The client address is the TCP peer, unless the peer is a trusted proxy
// (Config.TrustedProxies): then it is the nearest address in Forwarded or
// X-Forwarded-For that is not itself a trusted proxy. A header from any other
// peer is ignored, so a client cannot pick its own rate-limit key.

// clientIP returns the address requests from r are attributed to.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	peer := remoteAddr(r)
	if !s.trustedProxy(peer) {
		return peer
	}
	chain := forwardedChain(r)
	client := peer
	// Right to left: each entry was appended by the hop after it, and only
	// entries appended by trusted proxies can be believed.
	for i := len(chain) - 1; i >= 0; i-- {
		a := chain[i]
		if !a.IsValid() {
			break // garbage from a trusted hop's client: stop at that hop
		}
		client = a
		if !s.trustedProxy(a) {
			break
		}
	}
	return client
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// forwardedChain lists the client addresses a request passed through, from
// the original client to the last proxy: Forwarded (RFC 7239) if present,
// else X-Forwarded-For. Entries that are not addresses ("unknown",
// obfuscated identifiers) are invalid Addrs.
func forwardedChain(r *http.Request) []netip.Addr {
	var out []netip.Addr
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		for _, line := range fwd {
			for _, elem := range strings.Split(line, ",") {
				var a netip.Addr
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						a = parseForwardedAddr(v)
					}
				}
				out = append(out, a)
			}
		}
		return out
	}
	for _, line := range r.Header.Values("X-Forwarded-For") {
		for _, v := range strings.Split(line, ",") {
			out = append(out, parseForwardedAddr(v))
		}
	}
	return out
}

// parseForwardedAddr parses 192.0.2.1, "192.0.2.1:443", "[2001:db8::1]" or
// "[2001:db8::1]:443".
func parseForwardedAddr(v string) netip.Addr {
	v = strings.Trim(strings.TrimSpace(v), `"`)
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap()
	}
	v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	a, _ := netip.ParseAddr(v)
	return a.Unmap()
}

// keyByClientIP keys anonymous callers by client address; IPv6 clients by
// their /64, which one host usually holds whole.
func (s *Server) keyByClientIP(r *http.Request) (string, error) {
	a := s.clientIP(r)
	if !a.IsValid() {
		return "ip:unknown", nil
	}
	return "ip:" + httprate.CanonicalizeIP(a.String()), nil
}

// keyByCaller keys an authenticated request (behind s.authenticate) by its
// account.
func (s *Server) keyByCaller(r *http.Request) (string, error) {
	if id := callerFrom(r.Context()); !id.IsZero() {
		return "account:" + id.String(), nil
	}
	return s.keyByClientIP(r)
}

// keyByBearerOrIP keys a public route by account when the request carries
// a valid access token (checked through the token cache, so cheaply), and
// by client address otherwise. An invalid token is not an error here: the
// route is public, and the caller is simply anonymous.
func (s *Server) keyByBearerOrIP(r *http.Request) (string, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		if id, err := s.tokens.verify(r.Context(), tok); err == nil {
			return "account:" + id.String(), nil
		}
	}
	return s.keyByClientIP(r)
}

// limiter limits requests per key to n a minute, with per-account requests
// allowed perAccount a minute instead when the key is an account.
func (s *Server) limiter(scope string, perIP, perAccount int, key httprate.KeyFunc) func(http.Handler) http.Handler {
	const window = time.Minute
	ipLimit := httprate.NewRateLimiter(perIP, window)
	acctLimit := httprate.NewRateLimiter(perAccount, window)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k, err := key(r)
			if err != nil {
				Error(w, r, err)
				return
			}
			l := ipLimit
			if strings.HasPrefix(k, "account:") {
				l = acctLimit
			}
			if l.OnLimit(w, r, k) {
				s.ops.rateLimited(scope)
				// httprate names the window length; the sliding window
				// frees room well before that, so ask for a shorter wait.
				w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
				Error(w, r, coffer.Errorf(coffer.ERATELIMITED, "too many requests: retry in a few seconds"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// retryAfterSeconds is the Retry-After of a rate-limited answer.
const retryAfterSeconds = 5
