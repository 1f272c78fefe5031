package relay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func noSleep(context.Context, time.Duration) error { return nil }

func newClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Sleep = noSleep
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestNewRefusesWhatIsNotAnHTTPBaseURL(t *testing.T) {
	for _, bad := range []string{"", "ftp://relay", "relay:8080", "http://", "http://h/?q=1"} {
		if _, err := New(bad, nil); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := New("http://127.0.0.1:9/base/", nil)
	if err != nil || c.Base() != "http://127.0.0.1:9/base" {
		t.Fatalf("New trims the trailing slash: %v %q", err, c.Base())
	}
}

func TestLoginKeepsTheTokenAndLaterCallsCarryIt(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/auth/login":
			if r.Header.Get("Authorization") != "" {
				t.Error("login must not carry a token")
			}
			var req LoginRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.OTP != "000000" || req.DeviceID != "phone" {
				t.Errorf("login body: %+v %v", req, err)
			}
			writeJSON(w, 200, map[string]any{"access_token": "A1", "refresh_token": "R1", "expires_in": 900,
				"org_id": "o", "user_id": "alice", "device_id": "phone", "role": "member", "registration_id": 2147483646})
		case "/v1/keys":
			if r.Header.Get("Authorization") != "Bearer A1" {
				t.Errorf("keys call carries %q", r.Header.Get("Authorization"))
			}
			var raw map[string]any
			_ = json.NewDecoder(r.Body).Decode(&raw)
			if raw["ik"] != "AQID" { // []byte{1,2,3} as standard base64 with padding
				t.Errorf("ik sent as %v", raw["ik"])
			}
			writeJSON(w, 200, map[string]any{"opk_count": 1, "spk_key_id": "spk-1"})
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
	})
	pair, err := c.Login(context.Background(), LoginRequest{OrgID: "o", UserID: "alice", DeviceID: "phone", OTP: "000000"})
	if err != nil || pair.RegistrationID != 2147483646 {
		t.Fatalf("login: %+v %v", pair, err)
	}
	n, err := c.PublishKeys(context.Background(), KeyUpload{IK: []byte{1, 2, 3}, SIK: []byte{4}, OPKs: []OPK{{"opk-1", []byte{5}}}})
	if err != nil || n != 1 {
		t.Fatalf("publish: %d %v", n, err)
	}
}

func TestDeviceSetRefusalsCarryTheirDeviceLists(t *testing.T) {
	status := 409
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/messages/bob" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		if status == 409 {
			writeJSON(w, 409, map[string]any{"error": "mismatched_devices", "field": "body.envelopes",
				"detail": "x", "missing": []string{"laptop"}, "extra": []string{"tablet"}})
			return
		}
		writeJSON(w, 410, map[string]any{"error": "stale_devices", "field": nil, "detail": "x", "stale": []string{"phone"}})
	})
	_, err := c.Send(context.Background(), "bob", SendRequest{MessageID: "m", Envelopes: []Envelope{{"tablet", 7, []byte("DRV1")}}})
	var rej *Rejected
	if !errors.As(err, &rej) || !IsCode(err, 409, "mismatched_devices") {
		t.Fatalf("want a 409 refusal, got %v", err)
	}
	if strings.Join(rej.Missing, ",") != "laptop" || strings.Join(rej.Extra, ",") != "tablet" || rej.Field != "body.envelopes" {
		t.Fatalf("refusal: %+v", rej)
	}
	status = 410
	_, err = c.Send(context.Background(), "bob", SendRequest{MessageID: "m"})
	if !errors.As(err, &rej) || rej.Status != 410 || strings.Join(rej.Stale, ",") != "phone" {
		t.Fatalf("want a 410 refusal naming phone, got %v", err)
	}
}

func TestTransientFailuresAreRetriedAndOthersAreNot(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, map[string]any{"error": "rate_limited", "field": nil, "detail": "slow down"})
		case 2:
			w.WriteHeader(503)
			_, _ = io.WriteString(w, "<html>unavailable</html>")
		default:
			writeJSON(w, 200, map[string]any{"envelopes": []any{}, "more": false})
		}
	})
	page, err := c.Messages(context.Background(), 100)
	if err != nil || page.More || calls.Load() != 3 {
		t.Fatalf("want success on the third try: %v, %d calls", err, calls.Load())
	}

	calls.Store(0)
	c = newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(502)
	})
	_, err = c.Messages(context.Background(), 100)
	var rej *Rejected
	if !errors.As(err, &rej) || rej.Status != 502 || rej.Code != "http_error" || calls.Load() != Attempts {
		t.Fatalf("a relay that keeps failing is tried %d times: %v after %d", Attempts, err, calls.Load())
	}

	calls.Store(0)
	c = newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeJSON(w, 422, map[string]any{"error": "invalid_request", "field": "query.limit", "detail": "too big"})
	})
	if _, err = c.Messages(context.Background(), 9999); !IsCode(err, 422, "invalid_request") || calls.Load() != 1 {
		t.Fatalf("a 422 is final: %v after %d calls", err, calls.Load())
	}
}

func TestAnExpiredAccessTokenIsRefreshedOnce(t *testing.T) {
	var refreshes atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/auth/login":
			writeJSON(w, 200, map[string]any{"access_token": "old", "refresh_token": "R1", "registration_id": 1})
		case "/v1/auth/refresh":
			refreshes.Add(1)
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body["refresh_token"] != "R1" {
				t.Errorf("refresh with %q", body["refresh_token"])
			}
			writeJSON(w, 200, map[string]any{"access_token": "new", "refresh_token": "R2", "registration_id": 1})
		case "/v1/devices":
			if r.Header.Get("Authorization") != "Bearer new" {
				writeJSON(w, 401, map[string]any{"error": "token_expired", "field": "header.authorization", "detail": "expired"})
				return
			}
			writeJSON(w, 200, map[string]any{"devices": []any{map[string]any{"device_id": "phone", "registration_id": 5, "created_at": 1.5}}})
		}
	})
	if _, err := c.Login(context.Background(), LoginRequest{OrgID: "o", UserID: "u", DeviceID: "d", OTP: "000000"}); err != nil {
		t.Fatal(err)
	}
	devices, err := c.Devices(context.Background())
	if err != nil || len(devices) != 1 || devices[0].RegistrationID != 5 || refreshes.Load() != 1 {
		t.Fatalf("devices after refresh: %+v %v (%d refreshes)", devices, err, refreshes.Load())
	}
}

func TestAnswersThatAreNotTheDocumentedJSONAreTransportErrors(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"envelopes": []any{map[string]any{"body": "not base64!"}}, "more": false})
	})
	_, err := c.Messages(context.Background(), 10)
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "documented JSON") {
		t.Fatalf("want a TransportError, got %v", err)
	}
}

func TestAckSendsBatchesOfAtMostMaxAck(t *testing.T) {
	var sizes []int
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string][]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		sizes = append(sizes, len(body["delivery_ids"]))
		writeJSON(w, 200, map[string]any{"acked": body["delivery_ids"]})
	})
	ids := make([]string, MaxAck+3)
	for i := range ids {
		ids[i] = "d"
	}
	acked, err := c.Ack(context.Background(), ids)
	if err != nil || len(acked) != len(ids) || len(sizes) != 2 || sizes[0] != MaxAck || sizes[1] != 3 {
		t.Fatalf("ack batches %v, acked %d, %v", sizes, len(acked), err)
	}
}

func TestIdentitiesAsksTheIdentityOnlyLookup(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/identities/bob/phone" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		writeJSON(w, 200, map[string]any{"user_id": "bob", "devices": []any{map[string]any{
			"user_id": "bob", "device_id": "phone", "registration_id": 9, "ik": "AQ==", "sik": "Ag=="}}})
	})
	ids, err := c.Identities(context.Background(), "bob", "phone")
	if err != nil || len(ids) != 1 || ids[0].RegistrationID != 9 || ids[0].IK[0] != 1 || ids[0].SIK[0] != 2 {
		t.Fatalf("identities: %+v %v", ids, err)
	}
}

// The retry policy is the reference client's (semafore/client/backoff.py Backoff():
// base 0.05 s, factor 2, cap 5 s, jitter 0.5, 8 attempts; docs/adapter-contract.md §5).
func TestBackoffIsTheReferencePolicy(t *testing.T) {
	if Attempts != 8 {
		t.Fatalf("Attempts = %d, the reference tries 8 times", Attempts)
	}
	wantMs := []int64{50, 100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for n, want := range wantMs {
		if got := Backoff(n, 0, "").Milliseconds(); got != want {
			t.Errorf("retry %d without jitter waits %d ms, want %d", n, got, want)
		}
		if got := Backoff(n, 1, "").Milliseconds(); got != want/2 {
			t.Errorf("retry %d at full jitter waits %d ms, want %d", n, got, want/2)
		}
	}
	if got := Backoff(0, 0, "3"); got != 3*time.Second {
		t.Errorf("Retry-After 3 waits %v", got)
	}
	if got := Backoff(0, 0, "60"); got != BackoffCap {
		t.Errorf("Retry-After 60 is capped at %v, got %v", BackoffCap, got)
	}
	if got := Backoff(200, 0, ""); got != BackoffCap {
		t.Errorf("a late retry is capped at %v, got %v", BackoffCap, got)
	}
}
