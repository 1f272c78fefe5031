// Package relay is a client of the SemaFore relay's HTTP API (docs/server.md): login with a
// one-time password, the key directory, per-device envelope queues and device removal.
//
// It is what a Go platform's app would use to reach any relay (the reference relay or a
// platform's own): standard library only, JSON over net/http, bytes as standard base64 with
// padding (Go's encoding of []byte). Transient failures (connection errors, 429, 5xx) are
// retried with capped exponential back-off; an expired access token is refreshed once; every
// other refusal is a *Rejected carrying the relay's machine-readable error, so callers can
// repair a device set (409 mismatched_devices, 410 stale_devices) and retry.
package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The retry policy is the one every SemaFore client follows (docs/adapter-contract.md §5
// "Retries", the reference's semafore/client/backoff.py): one call is tried at most
// Attempts times when the relay or the network fails transiently (connection error, 429,
// 500, 502, 503, 504); before retry n (0-based) it waits
// min(BackoffCap, BackoffBase·2^n)·(1 − BackoffJitter·u), u uniform in [0, 1], and at least
// what a Retry-After header asked for (itself capped at BackoffCap). A client that gave up
// sooner would lose sends a reference client delivers through the same faulty network.
const (
	Attempts      = 8
	BackoffBase   = 50 * time.Millisecond
	BackoffCap    = 5 * time.Second
	BackoffJitter = 0.5
)

// Rejected is a relay refusal: the HTTP status and the error body of docs/server.md
// ({"error", "field", "detail"}, plus the device lists of 409 and 410).
type Rejected struct {
	Status  int      `json:"-"`
	Code    string   `json:"error"`
	Field   string   `json:"field"`
	Detail  string   `json:"detail"`
	Missing []string `json:"missing"`
	Extra   []string `json:"extra"`
	Stale   []string `json:"stale"`
	// a broadcast's refusals name the user of each device list
	Mismatched []UserDevices `json:"mismatched"`
	StaleUsers []UserDevices `json:"stale_users"`
}

// UserDevices is one user's part of a broadcast's 409 or 410.
type UserDevices struct {
	UserID  string   `json:"user_id"`
	Missing []string `json:"missing"`
	Extra   []string `json:"extra"`
	Stale   []string `json:"stale"`
}

func (e *Rejected) Error() string {
	msg := fmt.Sprintf("relay answered %d %s", e.Status, e.Code)
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// IsCode reports whether err is a refusal with this status and error code.
func IsCode(err error, status int, code string) bool {
	var r *Rejected
	return errors.As(err, &r) && r.Status == status && r.Code == code
}

// TransportError is a call that never got an HTTP answer (after retries).
type TransportError struct {
	Method, Path string
	Err          error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Method, e.Path, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Client is one device's connection to one relay. Safe for concurrent use.
type Client struct {
	base string
	http *http.Client
	// Sleep waits between retries (tests replace it).
	Sleep func(context.Context, time.Duration) error
	// Jitter draws u in [0, 1] for the back-off's jitter (tests replace it).
	Jitter func() float64

	mu      sync.Mutex
	access  string
	refresh string
}

// New validates the base URL (http or https, no query) and builds a client. A nil hc gets a
// client with a 10 s timeout.
func New(base string, hc *http.Client) (*Client, error) {
	base = strings.TrimRight(base, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("relay base URL must be http(s)://host[:port][/path], got %q", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: base, http: hc, Sleep: sleepCtx, Jitter: rand.Float64}, nil
}

// Base is the relay's base URL.
func (c *Client) Base() string { return c.base }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff is the delay before retry n (0-based) with jitter draw u (see Attempts), at least
// what a Retry-After header asked for (capped at BackoffCap).
func Backoff(n int, u float64, retryAfter string) time.Duration {
	d := BackoffCap
	if n < 16 {
		d = min(BackoffCap, BackoffBase<<n)
	}
	d = time.Duration(float64(d) * (1 - BackoffJitter*u))
	if s, err := strconv.Atoi(retryAfter); err == nil && s >= 0 {
		d = max(d, min(BackoffCap, time.Duration(s)*time.Second))
	}
	return d
}

// BackoffDelay is the wait before retry n of the retry policy, jitter drawn.
func (c *Client) BackoffDelay(n int) time.Duration { return c.backoff(n, "") }

func (c *Client) backoff(n int, retryAfter string) time.Duration {
	return Backoff(n, c.Jitter(), retryAfter)
}

func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// call sends one request (in: JSON body or nil) and decodes a 2xx JSON answer into out (nil:
// ignore the body). auth adds the bearer token and allows one refresh on an expired token.
func (c *Client) call(ctx context.Context, method, path string, in, out any, auth bool) error {
	var payload []byte
	contentType := ""
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return err
		}
		contentType = "application/json"
	}
	body, err := c.do(ctx, method, path, payload, contentType, auth)
	if err != nil || out == nil || len(body) == 0 {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &TransportError{method, path, fmt.Errorf("answer is not the documented JSON: %w", err)}
	}
	return nil
}

// do sends one request with the retry policy and returns a 2xx answer's body (a refusal is
// *Rejected, no answer *TransportError). contentType "" sends no body.
func (c *Client) do(ctx context.Context, method, path string, payload []byte, contentType string, auth bool) ([]byte, error) {
	refreshed := false
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("User-Agent", "semafore-go-adapter/1")
		if auth {
			if token := c.token(); token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil || attempt+1 >= Attempts {
				return nil, &TransportError{method, path, err}
			}
			if err := c.Sleep(ctx, c.backoff(attempt, "")); err != nil {
				return nil, &TransportError{method, path, err}
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, &TransportError{method, path, err}
		}
		if resp.StatusCode < 400 {
			return body, nil
		}
		rej := &Rejected{Status: resp.StatusCode, Code: "http_error"}
		if json.Unmarshal(body, rej) != nil || rej.Code == "" {
			rej.Code = "http_error"
			rej.Detail = strings.TrimSpace(string(body[:min(len(body), 200)]))
		}
		if resp.StatusCode == http.StatusUnauthorized && auth && !refreshed && c.canRefresh() &&
			(rej.Code == "token_expired" || rej.Code == "invalid_token" || rej.Code == "token_revoked") {
			refreshed = true
			if err := c.Refresh(ctx); err != nil {
				return nil, err
			}
			attempt--
			continue
		}
		if retryable(resp.StatusCode) && attempt+1 < Attempts {
			if err := c.Sleep(ctx, c.backoff(attempt, resp.Header.Get("Retry-After"))); err != nil {
				return nil, &TransportError{method, path, err}
			}
			continue
		}
		return nil, rej
	}
}

func (c *Client) token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.access
}

func (c *Client) canRefresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refresh != ""
}

func (c *Client) setTokens(p TokenPair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.access, c.refresh = p.AccessToken, p.RefreshToken
}

// Login is POST /v1/auth/login: the relay registers the device (assigning its registration
// id) on first login and returns a token pair, which the client keeps.
func (c *Client) Login(ctx context.Context, r LoginRequest) (TokenPair, error) {
	var p TokenPair
	if err := c.call(ctx, http.MethodPost, "/v1/auth/login", r, &p, false); err != nil {
		return TokenPair{}, err
	}
	if p.AccessToken == "" || p.RefreshToken == "" {
		return TokenPair{}, &TransportError{http.MethodPost, "/v1/auth/login", errors.New("answer has no token pair")}
	}
	c.setTokens(p)
	return p, nil
}

// Refresh is POST /v1/auth/refresh: rotates the refresh token (ADR-0163).
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	refresh := c.refresh
	c.mu.Unlock()
	var p TokenPair
	if err := c.call(ctx, http.MethodPost, "/v1/auth/refresh", map[string]string{"refresh_token": refresh}, &p, false); err != nil {
		return err
	}
	c.setTokens(p)
	return nil
}

// PublishKeys is PUT /v1/keys; it returns how many OPKs the relay now holds.
func (c *Client) PublishKeys(ctx context.Context, u KeyUpload) (int, error) {
	var out KeyCount
	if err := c.call(ctx, http.MethodPut, "/v1/keys", u, &out, true); err != nil {
		return 0, err
	}
	return out.OPKCount, nil
}

// AddOPKs is POST /v1/keys/opks (at most 100 per call).
func (c *Client) AddOPKs(ctx context.Context, opks []OPK) error {
	return c.call(ctx, http.MethodPost, "/v1/keys/opks", map[string][]OPK{"opks": opks}, nil, true)
}

// KeyCount is GET /v1/keys: how many OPKs of this device the relay still holds.
func (c *Client) KeyCount(ctx context.Context) (KeyCount, error) {
	var out KeyCount
	err := c.call(ctx, http.MethodGet, "/v1/keys", nil, &out, true)
	return out, err
}

// Bundles is GET /v1/keys/{user} (deviceID empty: every device that published keys) or
// GET /v1/keys/{user}/{device}. Each bundle claims one OPK at the relay.
func (c *Client) Bundles(ctx context.Context, userID, deviceID string) ([]DeviceBundle, error) {
	path := "/v1/keys/" + url.PathEscape(userID)
	if deviceID != "" {
		path += "/" + url.PathEscape(deviceID)
	}
	var out BundlesOut
	if err := c.call(ctx, http.MethodGet, path, nil, &out, true); err != nil {
		return nil, err
	}
	return out.Devices, nil
}

// Identities is GET /v1/identities/{user}[/{device}]: identity keys and registration ids of
// the devices that published keys, claiming no OPK (for pinning a sender's identity).
func (c *Client) Identities(ctx context.Context, userID, deviceID string) ([]Identity, error) {
	path := "/v1/identities/" + url.PathEscape(userID)
	if deviceID != "" {
		path += "/" + url.PathEscape(deviceID)
	}
	var out struct {
		Devices []Identity `json:"devices"`
	}
	if err := c.call(ctx, http.MethodGet, path, nil, &out, true); err != nil {
		return nil, err
	}
	return out.Devices, nil
}

// Devices is GET /v1/devices: the caller's user's devices (the caller's own included).
func (c *Client) Devices(ctx context.Context) ([]DeviceInfo, error) {
	var out struct {
		Devices []DeviceInfo `json:"devices"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/devices", nil, &out, true)
	return out.Devices, err
}

// RemoveDevice is DELETE /v1/devices/{device}: the relay revokes its sessions and deletes
// its keys and queue.
func (c *Client) RemoveDevice(ctx context.Context, deviceID string) error {
	return c.call(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(deviceID), nil, nil, true)
}

// Send is PUT /v1/messages/{user}: one envelope per device of the user (the caller's other
// devices when user is the caller's own). 409 and 410 come back as *Rejected with Missing /
// Extra / Stale set.
func (c *Client) Send(ctx context.Context, userID string, r SendRequest) (SendResponse, error) {
	var out SendResponse
	err := c.call(ctx, http.MethodPut, "/v1/messages/"+url.PathEscape(userID), r, &out, true)
	return out, err
}

// Messages is GET /v1/messages?limit=N: the oldest pending envelopes (fetching deletes
// nothing; only Ack does).
func (c *Client) Messages(ctx context.Context, limit int) (EnvelopePage, error) {
	var out EnvelopePage
	err := c.call(ctx, http.MethodGet, "/v1/messages?limit="+strconv.Itoa(limit), nil, &out, true)
	return out, err
}

// MaxAck is how many delivery ids one ack request may carry.
const MaxAck = 500

// Ack is POST /v1/messages/ack in batches of MaxAck; it returns the ids the relay deleted.
func (c *Client) Ack(ctx context.Context, deliveryIDs []string) ([]string, error) {
	var acked []string
	for start := 0; start < len(deliveryIDs); start += MaxAck {
		batch := deliveryIDs[start:min(start+MaxAck, len(deliveryIDs))]
		var out struct {
			Acked []string `json:"acked"`
		}
		if err := c.call(ctx, http.MethodPost, "/v1/messages/ack", map[string][]string{"delivery_ids": batch}, &out, true); err != nil {
			return acked, err
		}
		acked = append(acked, out.Acked...)
	}
	return acked, nil
}

// RotateSPK is PUT /v1/keys/spk: the relay verifies the new signed prekey against the
// stored identity and hands it out from then on.
func (c *Client) RotateSPK(ctx context.Context, spk SignedPrekey) error {
	return c.call(ctx, http.MethodPut, "/v1/keys/spk", spk, nil, true)
}

// Broadcast is POST /v1/broadcasts (admins only): every recipient user's device set in one
// all-or-nothing request. 409 and 410 come back as *Rejected with Mismatched / StaleUsers.
func (c *Client) Broadcast(ctx context.Context, r BroadcastRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/broadcasts", r, nil, true)
}

// DeclareAttachment is POST /v1/attachments: the ciphertext's size and SHA-256 and the users
// who may fetch it; the relay answers the file id.
func (c *Client) DeclareAttachment(ctx context.Context, size int, sha256 []byte, recipients []string) (string, error) {
	var out struct {
		FileID string `json:"file_id"`
	}
	in := map[string]any{"size": size, "sha256": sha256, "recipients": recipients}
	if err := c.call(ctx, http.MethodPost, "/v1/attachments", in, &out, true); err != nil {
		return "", err
	}
	if out.FileID == "" {
		return "", &TransportError{http.MethodPost, "/v1/attachments", errors.New("answer has no file_id")}
	}
	return out.FileID, nil
}

// UploadAttachment is PUT /v1/attachments/{file_id} with the ciphertext.
func (c *Client) UploadAttachment(ctx context.Context, fileID string, blob []byte) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/attachments/"+url.PathEscape(fileID), blob, "application/octet-stream", true)
	return err
}

// FetchAttachment is GET /v1/attachments/{file_id}: the ciphertext.
func (c *Client) FetchAttachment(ctx context.Context, fileID string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/v1/attachments/"+url.PathEscape(fileID), nil, "", true)
}

// ReportScreenshot is POST /v1/screenshots; it returns the report id.
func (c *Client) ReportScreenshot(ctx context.Context, r ScreenshotReport) (string, error) {
	var out struct {
		ReportID string `json:"report_id"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/screenshots", r, &out, true); err != nil {
		return "", err
	}
	return out.ReportID, nil
}
