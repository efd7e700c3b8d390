package wsrpc

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func TestScriptHandler(t *testing.T) {
	srv := httptest.NewServer(ScriptHandler())
	defer srv.Close()
	onDisk, err := os.ReadFile("js/wsrpc.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, script) {
		t.Fatal("the embedded script differs from js/wsrpc.js")
	}

	do := func(method string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/wsrpc.js", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	resp, body := do(http.MethodGet, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(body, script) {
		t.Error("GET: the body is not the embedded script")
	}
	etag := resp.Header.Get("ETag")
	if etag != scriptETag || len(etag) < 3 || etag[0] != '"' {
		t.Errorf("ETag %q, want the strong tag %q", etag, scriptETag)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}

	resp, body = do(http.MethodGet, http.Header{"If-None-Match": {etag}})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: status %d with %d bytes, want 304 and none", resp.StatusCode, len(body))
	}
	resp, _ = do(http.MethodGet, http.Header{"If-None-Match": {`"other"`}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("stale If-None-Match: status %d", resp.StatusCode)
	}

	resp, body = do(http.MethodHead, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD: status %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ = do(m, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}
