package live

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"semafore.local/goadapter/relay"
)

// fakeRelay is an in-memory relay speaking the subset of docs/server.md the live devices
// use, with the reference relay's device-set checks (409 mismatched_devices, 410
// stale_devices) and ack-then-delete queues. Unit tests only: the real relay is exercised
// by tests/interop/test_go_live.py.
type fakeRelay struct {
	t        *testing.T
	mu       sync.Mutex
	nextReg  int64
	nextTok  int
	tokens   map[string][2]string        // token -> user, device
	devices  map[string]map[string]int64 // user -> device -> registration id
	keys     map[string]relay.KeyUpload  // "user/device"
	queues   map[string][]relay.QueuedEnvelope
	bodies   [][]byte // every envelope body accepted
	nextDel  int
	rejected []string // codes of refused sends, in order
	// legacy: a relay from before reset routing and the identity-only lookup (SRS1 bodies
	// are 422 unknown_envelope_type, /v1/identities is 404 not_found)
	legacy      bool
	resets      int // raw SRS1 notices routed
	identityGet int
	bundleGet   int
	blobs       map[string][]byte // attachment file id -> ciphertext
}

func newFakeRelay(t *testing.T) (*fakeRelay, string) {
	f := &fakeRelay{t: t, tokens: map[string][2]string{}, devices: map[string]map[string]int64{},
		keys: map[string]relay.KeyUpload{}, queues: map[string][]relay.QueuedEnvelope{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func refuse(w http.ResponseWriter, status int, code string, extra map[string]any) {
	body := map[string]any{"error": code, "field": nil, "detail": code}
	for k, v := range extra {
		body[k] = v
	}
	reply(w, status, body)
}

func (f *fakeRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	if r.Method == http.MethodPost && r.URL.Path == "/v1/auth/login" {
		var req relay.LoginRequest
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.OTP != "000000" {
			refuse(w, 401, "invalid_credentials", nil)
			return
		}
		if f.devices[req.UserID] == nil {
			f.devices[req.UserID] = map[string]int64{}
		}
		reg, ok := f.devices[req.UserID][req.DeviceID]
		if !ok {
			f.nextReg++
			reg = 1000 + f.nextReg
			f.devices[req.UserID][req.DeviceID] = reg
		}
		f.nextTok++
		token := fmt.Sprintf("t%d", f.nextTok)
		f.tokens[token] = [2]string{req.UserID, req.DeviceID}
		reply(w, 200, relay.TokenPair{AccessToken: token, RefreshToken: "r" + token, RegistrationID: reg})
		return
	}
	who, ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		refuse(w, 401, "invalid_token", nil)
		return
	}
	me := who[0] + "/" + who[1]
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v1/keys":
		var u relay.KeyUpload
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			refuse(w, 422, "invalid_request", nil)
			return
		}
		f.keys[me] = u
		reply(w, 200, relay.KeyCount{OPKCount: len(u.OPKs)})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/keys":
		reply(w, 200, relay.KeyCount{OPKCount: len(f.keys[me].OPKs)})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/keys/opks":
		var body struct{ OPKs []relay.OPK }
		_ = json.NewDecoder(r.Body).Decode(&body)
		u := f.keys[me]
		u.OPKs = append(u.OPKs, body.OPKs...)
		f.keys[me] = u
		reply(w, 200, relay.KeyCount{OPKCount: len(u.OPKs)})
	case r.Method == http.MethodGet && path[0] == "identities" && !f.legacy:
		f.identityGet++
		var out []relay.Identity
		for device, reg := range f.devices[path[1]] {
			u, ok := f.keys[path[1]+"/"+device]
			if ok && (len(path) < 3 || path[2] == device) {
				out = append(out, relay.Identity{UserID: path[1], DeviceID: device, RegistrationID: reg, IK: u.IK, SIK: u.SIK})
			}
		}
		if len(out) == 0 {
			refuse(w, 404, "no_keys", nil)
			return
		}
		reply(w, 200, map[string]any{"user_id": path[1], "devices": out})
	case r.Method == http.MethodGet && path[0] == "identities": // legacy: no such route
		refuse(w, 404, "not_found", nil)
	case r.Method == http.MethodGet && path[0] == "keys":
		f.bundleGet++
		user := path[1]
		var out []relay.DeviceBundle
		for device, reg := range f.devices[user] {
			if len(path) == 3 && path[2] != device {
				continue
			}
			u, ok := f.keys[user+"/"+device]
			if !ok {
				continue
			}
			b := relay.DeviceBundle{UserID: user, DeviceID: device, RegistrationID: reg, IK: u.IK, SIK: u.SIK, SPK: u.SPK}
			if len(u.OPKs) > 0 {
				b.OPK = &u.OPKs[0]
				u.OPKs = u.OPKs[1:]
				f.keys[user+"/"+device] = u
			}
			out = append(out, b)
		}
		if len(out) == 0 {
			refuse(w, 404, "no_keys", nil)
			return
		}
		reply(w, 200, relay.BundlesOut{UserID: user, Devices: out})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/devices":
		var out []relay.DeviceInfo
		for device, reg := range f.devices[who[0]] {
			out = append(out, relay.DeviceInfo{DeviceID: device, RegistrationID: reg})
		}
		reply(w, 200, map[string]any{"devices": out})
	case r.Method == http.MethodDelete && path[0] == "devices":
		delete(f.devices[who[0]], path[1])
		delete(f.keys, who[0]+"/"+path[1])
		delete(f.queues, who[0]+"/"+path[1])
		for tok, dev := range f.tokens {
			if dev == [2]string{who[0], path[1]} {
				delete(f.tokens, tok)
			}
		}
		w.WriteHeader(204)
	case r.Method == http.MethodPut && path[0] == "messages":
		f.send(w, r, who, path[1])
	case r.Method == http.MethodGet && r.URL.Path == "/v1/messages":
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		q := f.queues[me]
		page := relay.EnvelopePage{Envelopes: q[:min(limit, len(q))], More: len(q) > limit}
		reply(w, 200, page)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/ack":
		var body struct {
			DeliveryIDs []string `json:"delivery_ids"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		acked := map[string]bool{}
		for _, id := range body.DeliveryIDs {
			acked[id] = true
		}
		var kept []relay.QueuedEnvelope
		for _, e := range f.queues[me] {
			if !acked[e.DeliveryID] {
				kept = append(kept, e)
			}
		}
		f.queues[me] = kept
		reply(w, 200, map[string]any{"acked": body.DeliveryIDs})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/attachments":
		if f.blobs == nil {
			f.blobs = map[string][]byte{}
		}
		id := fmt.Sprintf("file-%d", len(f.blobs)+1)
		f.blobs[id] = nil
		reply(w, 201, map[string]any{"file_id": id, "max_size": 1 << 23})
	case len(path) == 2 && path[0] == "attachments" && r.Method == http.MethodPut:
		if r.Header.Get("Content-Type") != "application/octet-stream" {
			refuse(w, 415, "unsupported_media_type", nil)
			return
		}
		blob, _ := io.ReadAll(r.Body)
		f.blobs[path[1]] = blob
		w.WriteHeader(204)
	case len(path) == 2 && path[0] == "attachments" && r.Method == http.MethodGet:
		blob, ok := f.blobs[path[1]]
		if !ok {
			refuse(w, 404, "not_found", nil)
			return
		}
		_, _ = w.Write(blob)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/websocket":
		// no push here: devices fetch over HTTP (the push socket is relay/websocket_test.go's)
		refuse(w, 404, "not_found", nil)
	default:
		f.t.Errorf("fake relay: unexpected %s %s", r.Method, r.URL.Path)
		refuse(w, 404, "not_found", nil)
	}
}

func (f *fakeRelay) send(w http.ResponseWriter, r *http.Request, who [2]string, user string) {
	var req relay.SendRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		refuse(w, 422, "invalid_request", nil)
		return
	}
	current := map[string]int64{}
	for d, reg := range f.devices[user] {
		if user != who[0] || d != who[1] {
			current[d] = reg
		}
	}
	var missing, extra, stale []string
	given := map[string]bool{}
	reset := len(req.Envelopes) > 0 && string(req.Envelopes[0].Body[:4]) == "SRS1"
	if reset && f.legacy {
		refuse(w, 422, "unknown_envelope_type", nil)
		return
	}
	for _, e := range req.Envelopes {
		given[e.DeviceID] = true
		reg, ok := current[e.DeviceID]
		switch {
		case !ok:
			extra = append(extra, e.DeviceID)
		case reg != e.RegistrationID:
			stale = append(stale, e.DeviceID)
		}
		if m := string(e.Body[:4]); (m != "SMX1" && m != "DRV1" && !reset) || (reset && (m != "SRS1" || len(e.Body) != 36)) {
			refuse(w, 422, "unknown_envelope_type", nil)
			return
		}
	}
	for d := range current {
		if !given[d] && !reset { // a reset notice concerns one device: no set to cover
			missing = append(missing, d)
		}
	}
	sort.Strings(missing)
	if len(missing)+len(extra) > 0 {
		f.rejected = append(f.rejected, "mismatched_devices")
		refuse(w, 409, "mismatched_devices", map[string]any{"missing": missing, "extra": extra})
		return
	}
	if len(stale) > 0 {
		f.rejected = append(f.rejected, "stale_devices")
		refuse(w, 410, "stale_devices", map[string]any{"stale": stale})
		return
	}
	kind := "message"
	if reset {
		kind = "reset"
		f.resets++
	}
	for _, e := range req.Envelopes {
		f.nextDel++
		f.bodies = append(f.bodies, e.Body)
		key := user + "/" + e.DeviceID
		f.queues[key] = append(f.queues[key], relay.QueuedEnvelope{
			DeliveryID: fmt.Sprintf("d%d", f.nextDel), MessageID: req.MessageID, Kind: kind,
			SenderUserID: who[0], SenderDeviceID: who[1], Body: e.Body,
		})
	}
	reply(w, 200, relay.SendResponse{MessageID: req.MessageID})
}
