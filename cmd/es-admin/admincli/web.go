package admincli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

//go:embed web
var webFiles embed.FS

// ConsoleOptions configure the web console.
type ConsoleOptions struct {
	// Schema is shown in the header. Defaults to "".
	Schema string
	// Token, when set, is required on every request: "Authorization: Bearer <token>", or once as
	// ?token=<token>, which sets an HttpOnly cookie. Defaults to "" (no token: loopback only).
	Token string
	// AllowActions allows checkpoint changes and parked-event retries and discards (POSTs with
	// CSRF protection). Defaults to false: read only.
	AllowActions bool
	// SampleEvery is how often the console samples subscription lag for its charts.
	// Defaults to 5s.
	SampleEvery time.Duration
	// Logger receives request errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// Console is the web console: server-rendered pages over a Store. Create it with NewConsole,
// serve its Handler, and stop its lag sampling with Close.
type Console struct {
	store  *es.Store
	opts   ConsoleOptions
	pages  map[string]*template.Template
	static http.Handler

	mu      sync.Mutex
	samples map[string][]int64 // stream + "\x00" + name: lag samples, oldest first
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}
}

// maxSamples is the number of lag samples a chart shows.
const maxSamples = 60

// NewConsole returns a console over store and starts sampling subscription lag.
func NewConsole(store *es.Store, opts ConsoleOptions) (*Console, error) {
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	funcs := template.FuncMap{
		"utc":    func(t time.Time) string { return t.UTC().Format(timeLayout) },
		"add":    func(a, b int) int { return a + b },
		"sub":    func(a, b int) int { return a - b },
		"pretty": prettyJSON,
		"clip":   func(b json.RawMessage) string { return clip(string(b), 80) },
	}
	c := &Console{store: store, opts: opts, pages: map[string]*template.Template{},
		samples: map[string][]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, name := range []string{"home", "streams", "stream", "all", "subscriptions", "parked"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(webFiles, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	static, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix("/static/", http.FileServerFS(static))
	go c.sampleLoop()
	return c, nil
}

// Close stops the lag sampling.
func (c *Console) Close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

func (c *Console) sampleLoop() {
	defer close(c.done)
	t := time.NewTicker(c.opts.SampleEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := c.sample(ctx); err != nil {
			c.opts.Logger.Warn("es-admin: sampling subscription lag", "error", err)
		}
		cancel()
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// sample reads every subscription and records its lag.
func (c *Console) sample(ctx context.Context) ([]es.SubscriptionInfo, error) {
	subs, err := c.store.ListSubscriptions(ctx, es.ListSubscriptionsOptions{})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range subs {
		k := sampleKey(s)
		v := append(c.samples[k], s.Lag)
		if len(v) > maxSamples {
			v = v[len(v)-maxSamples:]
		}
		c.samples[k] = v
	}
	return subs, nil
}

// sampleKey names a subscription's lag samples: each segment of a segmented projection has its
// own.
func sampleKey(s es.SubscriptionInfo) string {
	return s.Stream + "\x00" + s.Name + "\x00" + strconv.Itoa(s.Segment)
}

// Handler returns the console's HTTP handler: its pages, its static files and /api/all, behind
// the token check and, for POSTs, the CSRF check.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.home)
	mux.HandleFunc("GET /streams", c.streams)
	mux.HandleFunc("GET /stream", c.stream)
	mux.HandleFunc("GET /all", c.all)
	mux.HandleFunc("GET /api/all", c.apiAll)
	mux.HandleFunc("GET /subscriptions", c.subscriptions)
	mux.HandleFunc("GET /parked", c.parked)
	mux.HandleFunc("POST /subscriptions/checkpoint", c.action)
	mux.HandleFunc("POST /subscriptions/reset", c.action)
	mux.HandleFunc("POST /parked/retry", c.parkedAction)
	mux.HandleFunc("POST /parked/discard", c.parkedAction)
	mux.Handle("GET /static/", c.static)
	return c.secure(mux)
}

// secure adds security headers, checks the token and sets the CSRF cookie.
func (c *Console) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if c.opts.Token != "" {
			if q := r.URL.Query().Get("token"); q != "" && c.tokenOK(q) {
				http.SetCookie(w, &http.Cookie{Name: "es_token", Value: q, Path: "/", HttpOnly: true,
					SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
				u := *r.URL
				qs := u.Query()
				qs.Del("token")
				u.RawQuery = qs.Encode()
				http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
				return
			}
			if !c.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="es-admin"`)
				http.Error(w, "401 unauthorized: this console needs its token (Authorization: Bearer, or ?token=)", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(c.opts.Token)) == 1
}

func (c *Console) authorized(r *http.Request) bool {
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") && c.tokenOK(strings.TrimPrefix(a, "Bearer ")) {
		return true
	}
	ck, err := r.Cookie("es_token")
	return err == nil && c.tokenOK(ck.Value)
}

// csrfToken returns the request's CSRF token (the es_csrf cookie), setting a new one if needed:
// forms carry it back, and a POST whose field differs from its cookie is refused (a cross-site
// page can neither read the cookie nor, with SameSite=Strict, send it).
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie("es_csrf"); err == nil && len(ck.Value) == 32 {
		return ck.Value
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	v := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: "es_csrf", Value: v, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return v
}

// page is what every template gets.
type page struct {
	Title   string
	Schema  string
	Actions bool
	Flash   string
	CSRF    string
}

func (c *Console) newPage(title string, r *http.Request) page {
	return page{Title: title, Schema: c.opts.Schema, Actions: c.opts.AllowActions, Flash: r.URL.Query().Get("flash")}
}

func (c *Console) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.pages[name].ExecuteTemplate(w, name+".html", data); err != nil {
		c.opts.Logger.Warn("es-admin: render", "page", name, "error", err)
	}
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, es.ErrInvalidArgument):
		code = http.StatusBadRequest
	case errors.Is(err, es.ErrStreamNotFound), errors.Is(err, es.ErrSubscriptionNotFound):
		code = http.StatusNotFound
	}
	if code == http.StatusInternalServerError {
		c.opts.Logger.Warn("es-admin: request failed", "path", r.URL.Path, "error", err)
	}
	http.Error(w, err.Error(), code)
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, err := c.store.StreamInfo(ctx, es.AllStream)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p, err := c.store.PaginateStreams(ctx, es.PageOptions{PageSize: 1})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	subs, err := c.store.ListSubscriptions(ctx, es.ListSubscriptionsOptions{})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	lagging := 0
	var parked int64
	for _, s := range subs {
		if s.Lag > 0 {
			lagging++
		}
		parked += s.Parked
	}
	c.render(w, "home", struct {
		page
		Head, Parked                    int64
		Streams, Subscriptions, Lagging int
	}{c.newPage("Overview", r), info.StreamVersion, parked, p.TotalEntries, len(subs), lagging})
}

func intParam(r *http.Request, name string, def int64) int64 {
	v, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return def
	}
	return v
}

func (c *Console) streams(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	pg := max(intParam(r, "page", 1), 1)
	p, err := c.store.PaginateStreams(r.Context(), es.PageOptions{Search: q, PageNumber: int(min(pg, math.MaxInt32)), PageSize: 25})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, "streams", struct {
		page
		Query string
		Page  es.Page[es.StreamInfo]
		Pages int
	}{c.newPage("Streams", r), q, p, max(p.TotalPages, 1)})
}

const streamPageSize = 50

func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	from := max(intParam(r, "from", 1), 1)
	ctx := r.Context()
	var info *es.StreamInfo
	if name != es.AllStream {
		in, err := c.store.StreamInfo(ctx, name)
		if err != nil && !errors.Is(err, es.ErrStreamDeleted) {
			c.fail(w, r, err)
			return
		}
		info = &in
	}
	evs, err := c.store.ReadStreamForward(ctx, name, from, streamPageSize+1)
	if err != nil && !errors.Is(err, es.ErrStreamDeleted) {
		c.fail(w, r, err)
		return
	}
	more := len(evs) > streamPageSize
	if more {
		evs = evs[:streamPageSize]
	}
	out := make([]EventJSON, len(evs))
	next := from
	for i, ev := range evs {
		out[i] = eventJSON(ev)
		next = ev.EventNumber + 1
	}
	c.render(w, "stream", struct {
		page
		Name             string
		Info             *es.StreamInfo
		Events           []EventJSON
		From, Prev, Next int64
		More             bool
	}{c.newPage(name, r), name, info, out, from, max(from-streamPageSize, 1), next, more})
}

func (c *Console) all(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	evs, err := c.store.ReadAllBackward(ctx, -1, 20)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var head int64
	out := make([]EventJSON, len(evs))
	for i, ev := range evs {
		out[i] = eventJSON(ev)
		head = max(head, ev.EventNumber)
	}
	c.render(w, "all", struct {
		page
		Head   int64
		Events []EventJSON
	}{c.newPage("$all live", r), head, out})
}

func (c *Console) apiAll(w http.ResponseWriter, r *http.Request) {
	after := max(intParam(r, "after", 0), 0)
	evs, err := c.store.ReadAllForward(r.Context(), after+1, 100)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	out := make([]EventJSON, len(evs))
	for i, ev := range evs {
		out[i] = eventJSON(ev)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// subRow is a subscription as the subscriptions page shows it.
type subRow struct {
	Info    es.SubscriptionInfo
	LagTime string
	Segment string
	Lease   string
	Chart   template.HTML
}

func (c *Console) subscriptions(w http.ResponseWriter, r *http.Request) {
	subs, err := c.sample(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.mu.Lock()
	rows := make([]subRow, len(subs))
	for i, s := range subs {
		rows[i] = subRow{Info: s, LagTime: lagTime(s), Segment: segmentOf(s), Lease: leaseState(s), Chart: sparkline(c.samples[sampleKey(s)])}
		if s.LeaseExpiresAt != nil && s.Held {
			rows[i].Lease = "held until " + s.LeaseExpiresAt.UTC().Format("15:04:05")
		}
	}
	c.mu.Unlock()
	p := c.newPage("Subscriptions", r)
	if c.opts.AllowActions {
		p.CSRF = c.csrfToken(w, r)
	}
	c.render(w, "subscriptions", struct {
		page
		Subs    []subRow
		Every   time.Duration
		Samples int
	}{p, rows, c.opts.SampleEvery, maxSamples})
}

// sparkline draws lag samples as a small inline SVG (numbers only: nothing to escape).
func sparkline(v []int64) template.HTML {
	const w, h = 120, 28
	if len(v) == 0 {
		return ""
	}
	top := int64(1)
	for _, x := range v {
		top = max(top, x)
	}
	var pts strings.Builder
	for i, x := range v {
		px := 0.0
		if len(v) > 1 {
			px = float64(i) * w / float64(len(v)-1)
		}
		fmt.Fprintf(&pts, "%.1f,%.1f ", px, h-2-float64(x)*(h-4)/float64(top))
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="lag over time, max %d"><polyline points="%s"/></svg>`,
		w, h, w, h, top, strings.TrimSpace(pts.String())))
}

// maxParkedShown is the most parked events the parked page lists per subscription.
const maxParkedShown = 200

// parkedGroup is a subscription's parked events as the parked page shows them.
type parkedGroup struct {
	Stream, Name string
	Total        int64
	Events       []parkedRow
	More         int // parked events not shown
}

type parkedRow struct {
	ID, Position       int64
	Stream, Key, Error string
	Status             string
	Attempts           int
	ParkedAt           time.Time
}

// parked lists the parked events of every subscription that has some, or of one (?stream=, and
// ?name=), with retry and discard buttons when actions are allowed.
func (c *Console) parked(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	stream, name := r.URL.Query().Get("stream"), r.URL.Query().Get("name")
	subs, err := c.store.ListSubscriptions(ctx, es.ListSubscriptionsOptions{Stream: stream})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var groups []parkedGroup
	for _, s := range subs {
		if s.Parked == 0 || (name != "" && s.Name != name) {
			continue
		}
		ps, err := c.store.ListParked(ctx, s.Stream, s.Name)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if len(ps) == 0 { // retried or discarded since
			continue
		}
		g := parkedGroup{Stream: s.Stream, Name: s.Name, Total: int64(len(ps))}
		if len(ps) > maxParkedShown {
			g.More, ps = len(ps)-maxParkedShown, ps[:maxParkedShown]
		}
		for _, p := range ps {
			g.Events = append(g.Events, parkedRow{ID: p.ID, Position: p.Position, Stream: p.Stream, Key: p.PartitionKey,
				Error: p.Error, Status: string(p.Status), Attempts: p.Attempts, ParkedAt: p.ParkedAt})
		}
		groups = append(groups, g)
	}
	p := c.newPage("Parked events", r)
	if c.opts.AllowActions {
		p.CSRF = c.csrfToken(w, r)
	}
	filter := ""
	if stream != "" || name != "" {
		filter = strings.TrimSpace(name + " on " + stream)
	}
	c.render(w, "parked", struct {
		page
		Groups []parkedGroup
		Filter string
		Max    int
	}{p, groups, filter, maxParkedShown})
}

// postAllowed checks a POST action: actions allowed, and the CSRF field matching its cookie from
// this origin. It answers the request itself when not.
func (c *Console) postAllowed(w http.ResponseWriter, r *http.Request) bool {
	if !c.opts.AllowActions {
		http.Error(w, "403 forbidden: the console is read only (start it with --allow-actions)", http.StatusForbidden)
		return false
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	ck, err := r.Cookie("es_csrf")
	if err != nil || len(ck.Value) != 32 || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("csrf"))) != 1 || !sameOrigin(r) {
		http.Error(w, "403 forbidden: CSRF check failed (reload the page and try again)", http.StatusForbidden)
		return false
	}
	return true
}

// parkedAction runs a retry or a discard posted from the parked page: the parked events listed
// as id fields, or all of the subscription's with all=1 (one or the other, never neither).
func (c *Console) parkedAction(w http.ResponseWriter, r *http.Request) {
	if !c.postAllowed(w, r) {
		return
	}
	stream, name := r.PostForm.Get("stream"), r.PostForm.Get("name")
	var ids []int64
	for _, v := range r.PostForm["id"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			http.Error(w, "400 bad request: a parked event id is a number, 1 or more", http.StatusBadRequest)
			return
		}
		ids = append(ids, id)
	}
	if all := r.PostForm.Get("all") == "1"; all == (len(ids) > 0) {
		http.Error(w, "400 bad request: give parked event ids or all=1, one of the two", http.StatusBadRequest)
		return
	}
	act, done := c.store.RetryParked, "marked for a retry (the projection holding the lease runs them)"
	if strings.HasSuffix(r.URL.Path, "/discard") {
		act, done = c.store.DiscardParked, "discarded"
	}
	flash := ""
	if n, err := act(r.Context(), stream, name, ids...); err != nil {
		flash = "refused: " + err.Error()
	} else {
		flash = fmt.Sprintf("%d parked events of %s on %s %s", n, name, stream, done)
	}
	http.Redirect(w, r, "/parked?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// action runs a checkpoint change posted from the subscriptions page.
func (c *Console) action(w http.ResponseWriter, r *http.Request) {
	if !c.postAllowed(w, r) {
		return
	}
	stream, name := r.PostForm.Get("stream"), r.PostForm.Get("name")
	var (
		pos int64
		err error
	)
	if strings.HasSuffix(r.URL.Path, "/checkpoint") {
		if pos, err = strconv.ParseInt(r.PostForm.Get("position"), 10, 64); err != nil || pos < 0 {
			http.Error(w, "400 bad request: position must be a number, 0 or more", http.StatusBadRequest)
			return
		}
	}
	flash := fmt.Sprintf("checkpoint of %s on %s set to %d", name, stream, pos)
	if err := c.store.SetSubscriptionCheckpoint(r.Context(), stream, name, pos); err != nil {
		flash = "refused: " + err.Error()
	}
	http.Redirect(w, r, "/subscriptions?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// sameOrigin refuses a POST whose Origin (or Referer) names another host.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{r.Header.Get("Origin"), r.Header.Get("Referer")} {
		if h == "" || h == "null" {
			continue
		}
		u, err := url.Parse(h)
		return err == nil && u.Host == r.Host
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

func prettyJSON(b json.RawMessage) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(b)
	}
	return string(out)
}

// isLoopback says whether a listen address stays on this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func cmdServe(ctx context.Context, c *command) error {
	if !isLoopback(c.opts.listen) && c.opts.token == "" {
		return usagef("--listen %s is beyond loopback: set --token (or ES_ADMIN_TOKEN), since event data is often personal data", c.opts.listen)
	}
	console, err := NewConsole(c.store, ConsoleOptions{Schema: c.opts.schema, Token: c.opts.token, AllowActions: c.opts.allowActions})
	if err != nil {
		return err
	}
	defer console.Close()
	ln, err := net.Listen("tcp", c.opts.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: console.Handler(), ReadHeaderTimeout: 10 * time.Second}
	mode := "read only"
	if c.opts.allowActions {
		mode = "checkpoint and parked-event actions allowed"
	}
	fmt.Fprintf(c.errOut, "es-admin: serving the console of schema %s on http://%s (%s)\n", c.opts.schema, ln.Addr(), mode)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
