package admincli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// chromium returns Debian's chromium (or $ES_CHROMIUM), skipping the test when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ES_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser tests skipped: no chromium on PATH (apt-get install chromium, or set ES_CHROMIUM); .ci/run installs it")
	return ""
}

// artifactDir is where screenshots go: $ES_TEST_ARTIFACTS, else a folder under the system's
// temporary directory. It is kept after the test, for people to look at.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ES_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "es-admin-screenshots")
	}
	dir = filepath.Join(dir, estest.Driver())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless chromium with a fresh profile; the context ends it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	// A bound on the whole browser session, so a broken page fails the test instead of hanging
	// it; no assertion depends on it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// shoot saves a full-page screenshot as <artifacts>/<name>.png.
func shoot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		path := filepath.Join(artifactDir(t), name+".png")
		t.Logf("screenshot: %s", path)
		return os.WriteFile(path, png, 0o644)
	})
}

// text runs steps, then returns the text of the first element matching the CSS selector.
func text(ctx context.Context, sel string, steps ...chromedp.Action[chromedp.Void]) (string, error) {
	if err := chromedp.Do(ctx, steps...); err != nil {
		return "", err
	}
	return chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
}

// TestBrowserConsole drives the read-only console in headless Chromium: every page loads, a
// search finds a stream, an appended event appears in the $all live view, a lagging
// subscription shows its lag, and an event a projection parked shows, without retry or discard.
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	bctx := browser(t)
	store := estest.NewStore(t, nil)
	seed(t, store)
	project(t, store, "balances", newPoison(testID(2)), 1) // parks account-1's deposit
	console, err := NewConsole(store, ConsoleOptions{Schema: store.Schema()})
	is.NoErr(err)
	t.Cleanup(console.Close)
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)

	// Every page loads and is captured.
	for _, p := range []struct{ path, name, heading string }{
		{"/", "overview", "Overview"},
		{"/streams", "streams", "Streams"},
		{"/stream?name=account-1", "stream", "account-1"},
		{"/subscriptions", "subscriptions", "Subscriptions"},
		{"/parked", "parked", "Parked events"},
	} {
		h1, err := text(bctx, "h1",
			chromedp.Navigate(srv.URL+p.path),
			chromedp.WaitVisible(chromedp.CSS("h1")),
			shoot(t, p.name),
		)
		is.NoErr(err)
		is.Equal(h1, p.heading)
	}

	// A stream's events show their data and metadata.
	events, err := text(bctx, "#events", chromedp.Navigate(srv.URL+"/stream?name=account-1"))
	is.NoErr(err)
	is.True(strings.Contains(events, `"owner": "Ada"`))
	is.True(strings.Contains(events, `"by": "test"`))

	// A search finds a stream, and only the matching ones.
	found, err := text(bctx, "#streams tbody",
		chromedp.Navigate(srv.URL+"/streams"),
		chromedp.SendKeys(chromedp.CSS("#q"), "order"),
		chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="streams"]//a[text()="order-1"]`)),
		shoot(t, "streams-search"),
	)
	is.NoErr(err)
	is.True(strings.Contains(found, "order-1"))
	is.True(!strings.Contains(found, "account-1"))

	// An event appended while the live view is open appears in it.
	is.NoErr(chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/all"),
		chromedp.WaitVisible(chromedp.CSS("#live")),
	))
	is.NoErr(store.AppendToStream(context.Background(), "live-1", es.NoStream,
		[]es.EventData{{EventType: "Appeared", Data: map[string]any{"hello": "browser"}}}))
	is.NoErr(chromedp.Do(bctx,
		chromedp.WaitVisible(chromedp.Search(`//table[@id="live"]//a[text()="live-1"]`)),
		shoot(t, "all-live"),
	))

	// A lagging subscription shows its lag: projector is 2 of 5 events in ($all has 5 now).
	lag, err := text(bctx, `tr[data-subscription="projector"] td.lag.behind`,
		chromedp.Navigate(srv.URL+"/subscriptions"),
		shoot(t, "subscriptions-lagging"),
	)
	is.NoErr(err)
	is.Equal(lag, "3")
	// Read only: no action forms.
	forms, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.forms.length`))
	is.NoErr(err)
	is.Equal(forms, 0)
	parkedCount, err := text(bctx, `tr[data-subscription="balances"] td.parked`)
	is.NoErr(err)
	is.Equal(parkedCount, "1")

	// The parked page shows the parked event, its status, attempts and error, and no buttons.
	ps, err := store.ListParked(context.Background(), es.AllStream, "balances")
	is.NoErr(err)
	is.Equal(len(ps), 1)
	row, err := text(bctx, `section[data-subscription="balances"] tr[data-parked="`+fmt.Sprint(ps[0].ID)+`"]`,
		chromedp.Navigate(srv.URL+"/parked"),
		shoot(t, "parked-read-only"),
	)
	is.NoErr(err)
	is.True(strings.Contains(row, "account-1"))
	is.True(strings.Contains(row, "parked"))
	is.True(strings.Contains(row, "cannot apply MoneyDeposited account-1@2: account frozen"))
	forms, err = chromedp.Run(bctx, chromedp.Evaluate[int](`document.forms.length`))
	is.NoErr(err)
	is.Equal(forms, 0)
	// A POST is refused: the console is read only.
	resp, err := http.PostForm(srv.URL+"/parked/discard", url.Values{"stream": {es.AllStream}, "name": {"balances"}, "all": {"1"}})
	is.NoErr(err)
	_ = resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusForbidden)
	ps, err = store.ListParked(context.Background(), es.AllStream, "balances")
	is.NoErr(err)
	is.Equal(len(ps), 1)
}

// TestBrowserTokenAndActions: with a token, a request without it is refused, in the browser and
// with a plain client; with it (once as ?token=, then by cookie) pages load. With actions
// allowed, the reset button moves the checkpoint, the discard and retry buttons of the parked
// page work, and POSTs without the CSRF token are refused.
func TestBrowserTokenAndActions(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	bctx := browser(t)
	store := estest.NewStore(t, nil)
	seed(t, store)
	// balances parks account-1's deposit (its withdrawal waits behind it) and order-1's order.
	poison := newPoison(testID(2), testID(4))
	seedParked(t, store, poison, 3)
	const token = "s3cret-token"
	console, err := NewConsole(store, ConsoleOptions{Schema: store.Schema(), Token: token, AllowActions: true})
	is.NoErr(err)
	t.Cleanup(console.Close)
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/streams")
	is.NoErr(err)
	_ = resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusUnauthorized)

	body, err := text(bctx, "body",
		chromedp.Navigate(srv.URL+"/subscriptions"),
		shoot(t, "token-refused"),
	)
	is.NoErr(err)
	is.True(strings.Contains(body, "401 unauthorized"))

	flash, err := text(bctx, "#flash",
		chromedp.Navigate(srv.URL+"/subscriptions?token="+url.QueryEscape(token)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-subscription="projector"]`)),
		shoot(t, "subscriptions-actions"),
		chromedp.Click(chromedp.CSS(`tr[data-subscription="projector"] form[action="/subscriptions/reset"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
		shoot(t, "subscriptions-reset"),
	)
	is.NoErr(err)
	is.Equal(flash, "checkpoint of projector on $all set to 0")
	cp, err := store.SubscriptionCheckpoint(context.Background(), es.AllStream, "projector")
	is.NoErr(err)
	is.Equal(cp, int64(0))

	// A forged POST: the token, but no CSRF cookie and field.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/subscriptions/checkpoint",
		strings.NewReader(url.Values{"stream": {es.AllStream}, "name": {"projector"}, "position": {"4"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	is.NoErr(err)
	_ = resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusForbidden)
	cp, err = store.SubscriptionCheckpoint(context.Background(), es.AllStream, "projector")
	is.NoErr(err)
	is.Equal(cp, int64(0))

	parkedActions(t, bctx, srv, store, token, poison)
}

// TestServeRefusesBeyondLoopbackWithoutToken: serve does not start on a public address
// without a token.
func TestServeRefusesBeyondLoopbackWithoutToken(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	store := estest.NewStore(t, nil)
	var stdout, stderr syncBuffer
	code := Run(t.Context(), []string{"--driver", estest.Driver(), "--database-url", estest.DSN(t), "--schema", store.Schema(),
		"serve", "--listen", "0.0.0.0:0", "--token", ""}, &stdout, &stderr)
	is.Equal(code, ExitUsage)
	is.True(strings.Contains(stderr.String(), "beyond loopback"))
	is.True(isLoopback("127.0.0.1:8080"))
	is.True(isLoopback("[::1]:8080"))
	is.True(!isLoopback(":8080"))
}

// parkedActions continues TestBrowserTokenAndActions on the parked page: forged POSTs are
// refused, the discard button drops order-1's parked order, and once account-1's deposit no
// longer fails, the retry button has the running projection apply it and the withdrawal waiting
// behind it.
func parkedActions(t *testing.T, bctx context.Context, srv *httptest.Server, store *es.Store, token string, poison *poisonSet) {
	is := is.New(t)
	ctx := context.Background()
	ps, err := store.ListParked(ctx, es.AllStream, "balances")
	is.NoErr(err)
	is.Equal(len(ps), 3)
	deposit, order := ps[0], ps[1]
	is.Equal(deposit.EventID, testID(2))
	is.Equal(order.EventID, testID(4))
	is.Equal(ps[2].Status, es.ParkedWaiting)

	// Forged POSTs: the token, but no CSRF cookie and field; a cookie without the field.
	for _, cookie := range []string{"", "es_csrf=" + strings.Repeat("ab", 16)} {
		for _, path := range []string{"/parked/discard", "/parked/retry"} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+path,
				strings.NewReader(url.Values{"stream": {es.AllStream}, "name": {"balances"}, "all": {"1"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+token)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			resp, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			_ = resp.Body.Close()
			is.Equal(resp.StatusCode, http.StatusForbidden)
		}
	}
	after, err := store.ListParked(ctx, es.AllStream, "balances")
	is.NoErr(err)
	is.Equal(after, ps) // untouched

	// Discard order-1's order from its row.
	orderRow := fmt.Sprintf(`tr[data-parked="%d"]`, order.ID)
	flash, err := text(bctx, "#flash",
		chromedp.Navigate(srv.URL+"/parked"),
		chromedp.WaitVisible(chromedp.CSS(orderRow)),
		shoot(t, "parked-actions"),
		chromedp.Click(chromedp.CSS(orderRow+" button.discard")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	)
	is.NoErr(err)
	is.Equal(flash, "1 parked events of balances on $all discarded")
	gone, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.querySelector('`+orderRow+`') === null`))
	is.NoErr(err)
	is.True(gone)

	// The deposit no longer fails: Retry applies it, then the withdrawal behind it.
	poison.cure(testID(2))
	depositRow := fmt.Sprintf(`tr[data-parked="%d"]`, deposit.ID)
	flash, err = text(bctx, "#flash",
		chromedp.Navigate(srv.URL+"/parked"), // no flash yet: the one waited for is the retry's
		chromedp.WaitVisible(chromedp.CSS(depositRow)),
		chromedp.Click(chromedp.CSS(depositRow+" button.retry")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	)
	is.NoErr(err)
	is.Equal(flash, "1 parked events of balances on $all marked for a retry (the projection holding the lease runs them)")
	parkedUntil(t, store, "balances", func(ps []es.ParkedEvent) bool { return len(ps) == 0 })
	none, err := text(bctx, "#no-parked",
		chromedp.Navigate(srv.URL+"/parked"),
		shoot(t, "parked-retried"),
	)
	is.NoErr(err)
	is.Equal(none, "No parked events.")
}
