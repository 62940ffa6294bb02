// Package server is Coffer's HTTP API: chi routes, thin handlers, problem+
// JSON errors, bearer-token authentication and rate limits. It stores nothing
// itself; it calls the service interfaces of the root package, which
// cmd/cofferd wires to the store.
//
// The server is untrusted by design. It still checks everything it can
// (signatures, the chain rules, sizes, roles), as defense in depth: a
// non-member gets 404 for every group object and every write checks the
// caller's role.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/freshflight"
)

// Config is the server's configuration. Zero durations and limits take the
// defaults of DefaultConfig.
type Config struct {
	// Origins are the scheme://host:port values clients may bind into a
	// login statement. A login signed for any other origin is refused.
	Origins []string
	// Issuer and Audience of access tokens.
	Issuer, Audience string
	JWTKeys          []JWTKey
	AccessTTL        time.Duration
	RefreshTTL       time.Duration
	ChallengeTTL     time.Duration
	// AuthRateLimit is the number of auth and registration requests one
	// client address may make per minute.
	AuthRateLimit int
	// LogRateLimit is the number of transparency-log requests one anonymous
	// client address may make per minute. The log is public (witnesses and
	// auditors need no account) and its proofs cost database work, so it is
	// bounded too. A caller that presents a valid access token is limited
	// per account by AccountRateLimit instead.
	LogRateLimit int
	// AccountRateLimit is the number of requests one account may make per
	// minute, counted separately for the API and the log. It is sized for
	// the heaviest honest work, a client adding or syncing a 10,000-member
	// group (about three requests per member), and bounds a single account
	// to a fraction of what a server answers.
	AccountRateLimit int
	// TrustedProxies are the reverse proxies whose Forwarded or
	// X-Forwarded-For header names the client (ratelimit.go).
	TrustedProxies []netip.Prefix
	// MaxJSONBody caps ordinary JSON request bodies.
	MaxJSONBody int64
	// MaxCommitBody caps a commit upload, which carries one wrap per member.
	MaxCommitBody int64
	// MaxInflightBodyBytes bounds the bytes of large request bodies
	// (commits) held in memory at once (bodylimit.go).
	MaxInflightBodyBytes int64
	// MaxResourceSize caps a resource's ciphertext; MaxResourcesPerGroup
	// caps how many resources one group holds.
	MaxResourceSize      int64
	MaxResourcesPerGroup int64
	Logger               *slog.Logger
	Now                  func() time.Time

	// LogKey is the note verifier key of the transparency log's checkpoints,
	// served at /v1/log/key for clients that pin it on first use.
	LogKey string

	// ProgressTimeout cuts off a request body or response that moves less
	// than 64 KiB in this time: a client that trickles or stops reading.
	// JSONBodyTimeout is the time a JSON request body has to arrive whole.
	ProgressTimeout time.Duration
	JSONBodyTimeout time.Duration

	// MaxPendingBytesPerAccount caps the bytes one account's unfinished
	// uploads hold (received or reserved by a PUT in progress), so that no
	// account parks unbounded blobs until its uploads expire.
	MaxPendingBytesPerAccount int64

	// SupersededBlobGrace is how long the blob of a replaced or deleted
	// version is kept, for downloads that opened it just before; negative
	// deletes it at once.
	SupersededBlobGrace time.Duration

	// InlineContentMax is the largest ciphertext kept in the resource row
	// instead of a blob (at most coffer.MaxInlineContentSize, the
	// default); negative keeps every resource in the blob store.
	InlineContentMax int64

	// MetricsElsewhere drops /metrics from the API: the operator serves
	// MetricsHandler on a separate, private address (-metrics-addr).
	MetricsElsewhere bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Issuer:        "coffer",
		Audience:      "coffer-api",
		AccessTTL:     15 * time.Minute,
		RefreshTTL:    30 * 24 * time.Hour,
		ChallengeTTL:  60 * time.Second,
		AuthRateLimit: 60,
		LogRateLimit:  12000,

		AccountRateLimit: 60000,
		MaxJSONBody:      1 << 20,
		MaxCommitBody:    32 << 20,

		MaxInflightBodyBytes: 128 << 20,

		MaxResourceSize:      5 << 30,
		MaxResourcesPerGroup: 100_000,
		ProgressTimeout:      30 * time.Second,
		JSONBodyTimeout:      60 * time.Second,
		Logger:               slog.Default(),
		Now:                  time.Now,

		MaxPendingBytesPerAccount: 16 << 30,
		SupersededBlobGrace:       10 * time.Minute,
		InlineContentMax:          coffer.MaxInlineContentSize,
	}
}

// Services are the server's dependencies.
type Services struct {
	Accounts coffer.AccountService
	Auth     coffer.AuthService
	Groups   coffer.GroupService
	// Resources and Blobs store resource rows and bytes. Without them the
	// resource endpoints answer 503.
	Resources coffer.ResourceService
	Blobs     coffer.BlobStore
	// Ready reports whether the server can serve: database reachable and
	// schema at the version the binary expects.
	Ready func(ctx context.Context) error
	// Registry receives the server's metrics; nil means a private registry.
	Registry *prometheus.Registry
	// Log serves the transparency log; nil answers its endpoints with
	// EUNAVAILABLE.
	Log coffer.LogService
	// AccountChains stores suite v2 accounts and pairings; nil takes
	// Accounts when it implements the interface too, else their endpoints
	// answer EUNAVAILABLE.
	AccountChains coffer.AccountChainService
	// DeviceStates stores suite v2 accounts' encrypted device state; nil
	// takes Accounts when it implements the interface too, else its
	// endpoints answer EUNAVAILABLE.
	DeviceStates coffer.DeviceStateService
	// MemberKeys reads the stored suite v2 member keys; nil takes Groups,
	// then Accounts, when one implements the interface too, else suite v2
	// commits and their endpoint answer EUNAVAILABLE.
	MemberKeys coffer.MemberKeyService
}

// Server is the HTTP API.
type Server struct {
	cfg       Config
	accounts  coffer.AccountService
	auth      coffer.AuthService
	groups    coffer.GroupService
	resources coffer.ResourceService
	blobs     coffer.BlobStore
	log       coffer.LogService
	// accountChains stores suite v2 accounts (accountchain.go).
	accountChains coffer.AccountChainService
	// deviceStates stores the encrypted device state (devicestate.go).
	deviceStates coffer.DeviceStateService
	// memberKeys reads suite v2 member keys (memberkeys.go).
	memberKeys coffer.MemberKeyService
	// checkpoints shares reads of the latest checkpoint among concurrent
	// requests, each answer read after its request arrived.
	checkpoints freshflight.Group[string]
	ready       func(ctx context.Context) error
	tokens      *tokenIssuer
	metrics     *metrics
	ops         *opsMetrics
	registry    *prometheus.Registry
	router      chi.Router
	draining    atomic.Bool
	inFlight    atomic.Int64
	// bodyBudget bounds the bytes of large request bodies in memory.
	bodyBudget *semaphore.Weighted
	lastDone   atomic.Int64 // unix nanoseconds when a request last ended
}

// New returns a server. It fails when no JWT key is configured.
func New(cfg Config, svc Services) (*Server, error) {
	def := DefaultConfig()
	if cfg.Issuer == "" {
		cfg.Issuer = def.Issuer
	}
	if cfg.Audience == "" {
		cfg.Audience = def.Audience
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = def.AccessTTL
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = def.RefreshTTL
	}
	if cfg.ChallengeTTL == 0 {
		cfg.ChallengeTTL = def.ChallengeTTL
	}
	if cfg.AuthRateLimit == 0 {
		cfg.AuthRateLimit = def.AuthRateLimit
	}
	if cfg.LogRateLimit == 0 {
		cfg.LogRateLimit = def.LogRateLimit
	}
	if cfg.AccountRateLimit == 0 {
		cfg.AccountRateLimit = def.AccountRateLimit
	}
	if cfg.MaxJSONBody == 0 {
		cfg.MaxJSONBody = def.MaxJSONBody
	}
	if cfg.MaxCommitBody == 0 {
		cfg.MaxCommitBody = def.MaxCommitBody
	}
	if cfg.MaxInflightBodyBytes == 0 {
		cfg.MaxInflightBodyBytes = def.MaxInflightBodyBytes
	}
	if cfg.MaxResourceSize == 0 {
		cfg.MaxResourceSize = def.MaxResourceSize
	}
	if cfg.MaxResourcesPerGroup == 0 {
		cfg.MaxResourcesPerGroup = def.MaxResourcesPerGroup
	}
	if cfg.ProgressTimeout == 0 {
		cfg.ProgressTimeout = def.ProgressTimeout
	}
	if cfg.JSONBodyTimeout == 0 {
		cfg.JSONBodyTimeout = def.JSONBodyTimeout
	}
	if cfg.MaxPendingBytesPerAccount == 0 {
		cfg.MaxPendingBytesPerAccount = def.MaxPendingBytesPerAccount
	}
	if cfg.SupersededBlobGrace == 0 {
		cfg.SupersededBlobGrace = def.SupersededBlobGrace
	}
	if cfg.InlineContentMax == 0 || cfg.InlineContentMax > coffer.MaxInlineContentSize {
		cfg.InlineContentMax = def.InlineContentMax
	}
	if cfg.Logger == nil {
		cfg.Logger = def.Logger
	}
	if cfg.Now == nil {
		cfg.Now = def.Now
	}
	if len(cfg.JWTKeys) == 0 {
		return nil, errors.New("server: no JWT signing key configured")
	}
	if svc.Ready == nil {
		svc.Ready = func(context.Context) error { return nil }
	}
	reg := svc.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{
		cfg: cfg, accounts: svc.Accounts, auth: svc.Auth, groups: svc.Groups, log: svc.Log, ready: svc.Ready, registry: reg,
		resources: svc.Resources, blobs: svc.Blobs,
		tokens: &tokenIssuer{keys: cfg.JWTKeys, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.AccessTTL, now: cfg.Now},
	}
	s.accountChains = svc.AccountChains
	if ac, ok := svc.Accounts.(coffer.AccountChainService); ok && s.accountChains == nil {
		s.accountChains = ac
	}
	s.deviceStates = svc.DeviceStates
	if ds, ok := svc.Accounts.(coffer.DeviceStateService); ok && s.deviceStates == nil {
		s.deviceStates = ds
	}
	s.memberKeys = svc.MemberKeys
	for _, v := range []any{svc.Groups, svc.Accounts} {
		if mk, ok := v.(coffer.MemberKeyService); ok && s.memberKeys == nil {
			s.memberKeys = mk
		}
	}
	if sc, ok := svc.Auth.(sessionChecker); ok {
		s.tokens.sessions = sc
	}
	s.metrics = newMetrics(reg)
	s.ops = newOpsMetrics(reg)
	s.bodyBudget = newBodyBudget(cfg.MaxInflightBodyBytes)
	s.router = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Router exposes the chi router, so a test can walk the routes and compare
// them with docs/openapi.yaml.
func (s *Server) Router() chi.Routes { return s.router }

func (s *Server) now() time.Time { return s.cfg.Now() }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.requestContext, s.recoverer, s.metrics.middleware, s.refuseWhileDraining)
	r.Use(s.deadlines)

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		respond(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.handleReady)
	if !s.cfg.MetricsElsewhere {
		r.Method(http.MethodGet, "/metrics", s.MetricsHandler())
	}

	r.Route("/v1", func(r chi.Router) {
		r.Route("/log", func(r chi.Router) {
			r.Use(s.limiter("log", s.cfg.LogRateLimit, s.cfg.AccountRateLimit, s.keyByBearerOrIP))
			s.logRoutes(r)
		})
		r.Group(func(r chi.Router) {
			// Anonymous by nature: per client address only.
			r.Use(s.limiter("auth", s.cfg.AuthRateLimit, s.cfg.AuthRateLimit, s.keyByClientIP))
			r.Post("/accounts", s.handleRegister)
			r.Post("/auth/challenge", s.handleChallenge)
			r.Post("/auth/login", s.handleLogin)
			r.Post("/auth/refresh", s.handleRefresh)
			r.Post("/auth/logout", s.handleLogout)
		})
		// Suite v2 accounts that a device without a session needs: chains
		// are public, a link authenticates itself, and a pairing is how a
		// new device asks in. Reads are limited as the public log is (a
		// client following its contacts' chains reads many, per account
		// when it has a session); writes per client address as log-ins
		// are, with a budget of their own.
		r.Group(func(r chi.Router) {
			r.Use(s.limiter("account-reads", s.cfg.LogRateLimit, s.cfg.AccountRateLimit, s.keyByBearerOrIP))
			r.Get("/accounts/{accountID}/links", s.handleLinksByID)
			r.Get("/handles/{handle}/links", s.handleLinksByHandle)
			r.Get("/pairings/{pairingID}", s.handleGetPairing)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.limiter("account-writes", s.cfg.AuthRateLimit, s.cfg.AuthRateLimit, s.keyByClientIP))
			r.Post("/accounts/{accountID}/links", s.handleAppendLink)
			r.Post("/pairings", s.handleCreatePairing)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate, s.limiter("api", s.cfg.AccountRateLimit, s.cfg.AccountRateLimit, s.keyByCaller))
			r.Get("/accounts/{accountID}", s.handleAccountByID)
			r.Post("/accounts/lookup", s.handleAccountsLookup)
			r.Get("/handles/{handle}", s.handleAccountByHandle)
			r.Put("/pairings/{pairingID}/approval", s.handleApprovePairing)
			r.Post("/member-keys", s.handleMemberKeys)
			r.Get("/account-state", s.handleGetDeviceState)
			r.Put("/account-state", s.handlePutDeviceState)
			r.Route("/uploads/{uploadID}", s.uploadRoutes)
			r.Route("/groups", func(r chi.Router) {
				r.With(s.boundBody(s.cfg.MaxCommitBody)).Post("/", s.handleCreateGroup)
				r.Get("/", s.handleListGroups)
				r.Route("/{groupID}", func(r chi.Router) {
					r.Get("/", s.handleGetGroup)
					r.With(s.boundBody(s.cfg.MaxCommitBody)).Post("/commits", s.handleAppendCommit)
					r.Get("/commits", s.handleListCommits)
					r.Get("/commits/{seq}/tree-ciphertexts", s.handleTreeCiphertexts)
					r.Get("/tree-nodes", s.handleTreeNodeKeys)
					r.Get("/keys", s.handleKeys)
					r.Route("/resources", s.resourceRoutes)
				})
			})
		})
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		Error(w, r, coffer.Errorf(coffer.ENOTFOUND, "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, "application/problem+json", api.Problem{
			Type: "urn:coffer:problem:" + string(coffer.EINVALID), Title: "Method Not Allowed",
			Status: http.StatusMethodNotAllowed, Code: string(coffer.EINVALID),
			Detail: "method " + r.Method + " is not allowed on this endpoint",
		})
	})
	return r
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(r.Context()); err != nil {
		loggerFrom(r).WarnContext(r.Context(), "not ready", "err", err)
		Error(w, r, coffer.Errorf(coffer.EUNAVAILABLE, "not ready"))
		return
	}
	respond(w, http.StatusOK, map[string]string{"status": "ready"})
}

// requestContext gives each request an id and a logger carrying it. The log
// line names the route pattern, never the path's values, headers or body:
// those may hold tokens.
func (s *Server) requestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := requestID(r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Request-Id", rid)
		l := s.cfg.Logger.With("request_id", rid)
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		ctx := context.WithValue(context.WithValue(r.Context(), loggerKey{}, l), serverKey{}, s)
		next.ServeHTTP(ww, r.WithContext(ctx))
		l.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("route", routePattern(r)),
			slog.Int("status", ww.Status()),
			slog.Duration("duration", time.Since(start)))
	})
}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

// recoverer turns a panic into a 500 without leaking its value.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				loggerFrom(r).ErrorContext(r.Context(), "panic", "value", v)
				Error(w, r, errors.New("panic"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
