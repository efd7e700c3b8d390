package browser_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsrpc/wsrpc/examples/chat/chat"
)

// TestChat runs examples/chat with two users, ada and bob, in two tabs of
// one headless Chromium: bob's arrival reaches ada's page as a presence
// call from the server, ada's message reaches bob's page as a broadcast,
// and bob's departure reaches ada's page as another presence call. With
// $WSRPC_SCREENSHOT set, it writes a PNG of ada's tab there (docs/chat.png
// is made this way).
func TestChat(t *testing.T) {
	start := time.Now()
	chromium(t)
	c := chat.New(nil)
	srv := httptest.NewServer(c) // 127.0.0.1
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})

	ada := newBrowser(t)

	// do runs steps in tab, bounded in time.
	do := func(tab context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// wait polls expr in tab until it is true.
	wait := func(tab context.Context, what, expr string) {
		t.Helper()
		do(tab, what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second)))
	}
	say := func(tab context.Context, who, text string) {
		t.Helper()
		do(tab, who+" says "+text,
			chromedp.SendKeys(chromedp.ID("text"), text),
			chromedp.Click(chromedp.CSS("#say button")))
	}

	// The first run on a tab's context starts the tab (and the browser):
	// not on a context derived from it, which would end them with it.
	if err := chromedp.Do(ada, chromedp.EmulateViewport(1000, 640), chromedp.Navigate(srv.URL+"/?name=ada&room=lobby")); err != nil {
		t.Fatalf("ada opens the chat: %v", err)
	}
	wait(ada, "ada in the lobby", `window.chat?.ready === true && window.chat.room === "lobby"`)

	// A second tab of the same browser, now that it runs.
	bob, cancelBob := chromedp.NewContext(ada)
	t.Cleanup(cancelBob)

	if err := chromedp.Do(bob, chromedp.Navigate(srv.URL+"/?name=bob&room=lobby")); err != nil {
		t.Fatalf("bob opens the chat: %v", err)
	}
	wait(bob, "bob in the lobby", `window.chat?.ready === true && window.chat.room === "lobby"`)

	// The server called ada's page when bob joined.
	wait(ada, "presence call for bob", `window.chat.presence.some((p) => p.room === "lobby" && p.user === "bob" && p.joined)`)
	wait(ada, "bob among ada's members", `document.getElementById("members").innerText.includes("bob")`)
	var members []string
	run(t, bob, `return window.chat.members;`, &members)
	if len(members) != 2 || members[0] != "ada" || members[1] != "bob" {
		t.Errorf("bob's members: %q, want [ada bob]", members)
	}

	// A message goes to the room: bob's page shows ada's.
	say(ada, "ada", "hello")
	wait(bob, "ada's message on bob's page",
		`window.chat.messages.some((m) => m.from === "ada" && m.text === "hello" && m.room === "lobby") &&
		 document.getElementById("log").innerText.includes("hello")`)
	say(bob, "bob", "hi ada! the server called your page to say I joined")
	wait(ada, "bob's message on ada's page", `document.getElementById("log").innerText.includes("hi ada!")`)
	say(ada, "ada", "and messages are broadcast to the room")
	wait(ada, "ada's own message", `document.getElementById("log").innerText.includes("broadcast to the room")`)

	// The room list counts both.
	wait(ada, "room counts", `document.querySelector("#rooms li.current .count")?.textContent === "2"`)

	// Authenticate refuses bad names with 401.
	var status int
	run(t, ada, `return (await fetch("/rpc?token=no%20way")).status;`, &status)
	if status != 401 {
		t.Errorf("a bad name got HTTP %d, want 401", status)
	}

	sctx, scancel := context.WithTimeout(ada, 20*time.Second)
	defer scancel()
	shot, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if cfg.Width != 1000 || cfg.Height != 640 {
		t.Errorf("screenshot of %d×%d, want 1000×640", cfg.Width, cfg.Height)
	}
	if path := os.Getenv("WSRPC_SCREENSHOT"); path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	}

	// bob closes his tab: the server calls ada's page again.
	ctx, cancel := context.WithTimeout(bob, 10*time.Second)
	defer cancel()
	if err := chromedp.Cancel(ctx); err != nil {
		t.Fatalf("closing bob's tab: %v", err)
	}
	wait(ada, "presence call for bob leaving", `window.chat.presence.some((p) => p.user === "bob" && !p.joined)`)
	wait(ada, "bob gone from ada's members", `!document.getElementById("members").innerText.includes("bob")`)
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}
