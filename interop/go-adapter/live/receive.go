package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"semafore.local/goadapter/content"
	"semafore.local/goadapter/protocol"
	"semafore.local/goadapter/relay"
)

// PageSize is how many envelopes one GET /v1/messages asks for (the relay's maximum).
const PageSize = 500

// MaxPerReceive bounds how many envelopes one Receive opens.
const MaxPerReceive = 5000

// Received is one envelope that carried a message (or failed to open), as live.receive
// reports it.
type Received struct {
	From           string `json:"from"`
	DeliveryID     string `json:"delivery_id"`
	EnvelopeSHA256 string `json:"envelope_sha256"`
	MessageID      string `json:"message_id,omitempty"`
	Plaintext      string `json:"plaintext,omitempty"`
	SyncTo         string `json:"sync_to,omitempty"`
	Error          string `json:"error,omitempty"`
	Detail         string `json:"detail,omitempty"`
	// Reset marks a SPEC §4 reset notice (a bare SRS1, or a content of kind reset); Body is
	// then the whole envelope in hex, for the gate's wire scan: a device sends a reset while
	// receiving, so no live.send lists it (docs/adapter-contract.md §5).
	Reset bool   `json:"reset,omitempty"`
	Body  string `json:"body,omitempty"`
	// Kind is the content's kind when it is not "text" ("attachment", "receipt",
	// "broadcast"); Rcpt the message ids a receipt acknowledges.
	Kind string   `json:"kind,omitempty"`
	Rcpt []string `json:"rcpt,omitempty"`
	// Attachment is the fetched and opened attachment (hex), AttachmentError why it could
	// not be fetched or opened.
	Attachment      string `json:"attachment,omitempty"`
	AttachmentError string `json:"attachment_error,omitempty"`
}

// Receive opens what the push socket delivered and every envelope still pending at the
// relay, in queue order (reverse: newest first, how the gate reorders delivery),
// acknowledges them and reports each one that carried a message. A failure to open an
// envelope is reported in its entry, not as an error; a reset notice is reported with its
// bytes (Reset, Body); duplicate message ids produce no entry.
//
// The relay pushes an envelope and lists it until it is acknowledged, so one delivery can
// come both ways; it is opened once. The rest is what the reference client does: a queued
// envelope listed again (its ack was lost) is opened again, and a frame whose key was used
// is reported (DuplicateMessage); a pushed frame repeating one opened from the socket (the
// network duplicated it) counts as a duplicate dropped; a pushed frame with an unknown
// delivery id (an adversary's replay) is opened like any other, and the ratchet rejects a
// replayed frame.
//
// Fetching deletes nothing and the queue has no cursor, so more than PageSize pending
// envelopes are opened and acknowledged page by page (the order applies within a page).
//
// fetch=false opens only what the push socket delivered, as a running app does between
// foregroundings (nothing for a device without a socket); the queue is fetched when the
// app comes to the foreground (docs/adapter-contract.md §5 live.receive).
func (d *Device) Receive(reverse, fetch bool) ([]Received, error) {
	client, err := d.connected()
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	var pushed []relay.QueuedEnvelope
	if d.push != nil {
		pushed = d.push.drain()
	}
	out := []Received{}
	for opened := 0; opened < MaxPerReceive; {
		var page relay.EnvelopePage
		if fetch {
			if page, err = client.Messages(ctx, PageSize); err != nil {
				return nil, relayError(err)
			}
		}
		pushedIDs := map[string]bool{}
		for _, env := range pushed {
			pushedIDs[env.DeliveryID] = true
		}
		envs := d.unopened(pushed, page.Envelopes)
		pushed = nil
		if reverse {
			for i, j := 0, len(envs)-1; i < j; i, j = i+1, j-1 {
				envs[i], envs[j] = envs[j], envs[i]
			}
		}
		acks := make([]string, 0, len(envs)+len(page.Envelopes))
		for _, env := range page.Envelopes {
			acks = append(acks, env.DeliveryID) // opened now or before (its ack was lost)
		}
		for _, env := range envs {
			if containsID(page.Envelopes, env.DeliveryID) && !pushedIDs[env.DeliveryID] {
				d.markOpened(env.DeliveryID, fromQueue)
			} else {
				d.markOpened(env.DeliveryID, fromPush)
				if !containsID(page.Envelopes, env.DeliveryID) {
					acks = append(acks, env.DeliveryID)
				}
			}
			if item, ok := d.open(ctx, env); ok {
				out = append(out, item)
			}
		}
		if len(acks) > 0 {
			if _, err := client.Ack(ctx, acks); err != nil {
				return nil, relayError(err)
			}
		}
		opened += len(page.Envelopes)
		if !page.More || len(page.Envelopes) == 0 {
			break
		}
	}
	return out, nil
}

// unopened is what to open of the pushed frames and a fetched page: the pushed ones first,
// in arrival order, as a client opens each push when it comes (a frame the network dropped
// is then opened late, from the queue, with a stored skipped key: SPEC §3), then the page's
// envelopes (queue order) not opened yet. Each delivery is opened once; a pushed repeat of
// one opened from the socket (the network duplicated it) is a duplicate dropped.
func (d *Device) unopened(pushed, page []relay.QueuedEnvelope) []relay.QueuedEnvelope {
	out := make([]relay.QueuedEnvelope, 0, len(page)+len(pushed))
	taken := map[string]bool{}
	for _, env := range pushed {
		switch {
		case d.opened[env.DeliveryID] == fromPush || taken[env.DeliveryID]:
			d.stats.DuplicatesDropped++
		case d.opened[env.DeliveryID] == fromQueue:
			// fetched before the push arrived: opened from the queue
		default:
			taken[env.DeliveryID] = true
			out = append(out, env)
		}
	}
	for _, env := range page {
		if !taken[env.DeliveryID] && d.opened[env.DeliveryID] != fromPush {
			out = append(out, env)
		}
	}
	return out
}

func containsID(envs []relay.QueuedEnvelope, deliveryID string) bool {
	for _, env := range envs {
		if env.DeliveryID == deliveryID {
			return true
		}
	}
	return false
}

// open decrypts one envelope; ok is false for an envelope that carries no message.
func (d *Device) open(ctx context.Context, env relay.QueuedEnvelope) (Received, bool) {
	sender := Address(env.SenderUserID, env.SenderDeviceID)
	sum := sha256.Sum256(env.Body)
	item := Received{From: sender, DeliveryID: env.DeliveryID, EnvelopeSHA256: hex.EncodeToString(sum[:])}
	fail := func(err error) (Received, bool) {
		item.MessageID = env.MessageID
		item.Error, item.Detail = protocol.ErrMalformedEnvelope, err.Error()
		var pe *protocol.Error
		if errors.As(err, &pe) {
			item.Error = pe.Name
		}
		if item.Error == protocol.ErrDuplicateMessage {
			d.stats.DuplicatesDropped++
		} else {
			d.stats.Undecryptable++
		}
		return item, true
	}
	reset := func() (Received, bool) {
		item.Reset, item.Body = true, hex.EncodeToString(env.Body)
		return item, true
	}
	if bytes.HasPrefix(env.Body, protocol.ResetMagic) {
		d.handleReset(sender, env.Body)
		return reset()
	}
	smx1 := bytes.HasPrefix(env.Body, protocol.SMX1Magic[:3])
	if _, _, pinned := d.identities.Pinned(sender); smx1 && !pinned {
		d.pinSender(ctx, env.SenderUserID, env.SenderDeviceID)
	}
	plaintext, err := d.decrypt(sender, env.Body)
	if err != nil && smx1 && d.pinSender(ctx, env.SenderUserID, env.SenderDeviceID) {
		// the sender reinstalled: its SMX1 opens under the identity it has now
		plaintext, err = d.decrypt(sender, env.Body)
	}
	if err != nil {
		if key, ok := protocol.FailedFrameKey(env.Body); ok && !isDuplicate(err) {
			d.sendReset(ctx, env.SenderUserID, env.SenderDeviceID, protocol.ResetNotice(key))
		}
		return fail(err)
	}
	if smx1 {
		d.replenishPrekeys(ctx)
	}
	c, err := content.Decode(plaintext)
	if err != nil {
		return fail(err)
	}
	if !d.firstTimeSeen(env.SenderUserID + "/" + c.ID) {
		d.stats.DuplicatesDropped++
		return item, false // a duplicate the application already showed
	}
	if c.Kind == content.KindReset {
		d.handleReset(sender, c.Body)
		return reset()
	}
	item.MessageID, item.Plaintext, item.SyncTo = c.ID, hex.EncodeToString(c.Body), c.SyncTo
	if c.Kind != content.KindText {
		item.Kind = c.Kind
	}
	if c.Kind == content.KindReceipt {
		item.Plaintext, item.Rcpt = "", c.Rcpt
	}
	if c.Attachment != nil { // the app fetches and opens the blob (ADR-0157)
		data, err := d.fetchAttachment(ctx, c.Attachment)
		if err != nil {
			item.AttachmentError = err.Error()
		} else {
			item.Attachment = hex.EncodeToString(data)
		}
	}
	return item, true
}

func isDuplicate(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Name == protocol.ErrDuplicateMessage
}

func (d *Device) decrypt(sender string, body []byte) ([]byte, error) {
	remote := protocol.Remote{Address: sender}
	if ik, sik, ok := d.identities.Pinned(sender); ok {
		remote.IK, remote.SIK = ik, sik
	} else if bytes.HasPrefix(body, protocol.SMX1Magic[:3]) {
		return nil, &protocol.Error{Name: protocol.ErrUntrustedIdentity, Field: "identity", Detail: "no identity known for " + sender}
	}
	r := d.record(sender)
	before := r.SkippedKeysUsed()
	pt, err := r.Decrypt(d.keys, remote, body)
	if used := r.SkippedKeysUsed() - before; err == nil && used > 0 {
		d.stats.SkippedKeysUsed += used
	}
	return pt, err
}

// pinSender fetches a sender's identity keys and pins them (an SMX1 carries none, SPEC §2).
// It asks the identity-only lookup, which spends none of the sender's OPKs; a relay without
// it (404 on the route) is asked for the bundle instead, whose SPK signature must verify.
// True if the pinned identity changed.
func (d *Device) pinSender(ctx context.Context, userID, deviceID string) bool {
	address := Address(userID, deviceID)
	ik0, sik0, had := d.identities.Pinned(address)
	found, ok := d.lookupIdentity(ctx, userID, deviceID)
	if !ok {
		return false
	}
	d.trust(address, found.IK, found.SIK)
	if devices := d.directory[userID]; devices != nil {
		devices[deviceID] = found.RegistrationID
	}
	return !had || !equal(ik0, found.IK) || !equal(sik0, found.SIK)
}

func (d *Device) lookupIdentity(ctx context.Context, userID, deviceID string) (relay.Identity, bool) {
	ids, err := d.relay.Identities(ctx, userID, deviceID)
	var rej *relay.Rejected
	if errors.As(err, &rej) && rej.Status == 404 && rej.Code != "no_keys" {
		return d.identityFromBundle(ctx, userID, deviceID)
	}
	if err != nil {
		return relay.Identity{}, false
	}
	for _, id := range ids {
		if id.UserID == userID && id.DeviceID == deviceID && len(id.IK) == protocol.KeySize && len(id.SIK) == protocol.KeySize {
			return id, true
		}
	}
	return relay.Identity{}, false
}

func (d *Device) identityFromBundle(ctx context.Context, userID, deviceID string) (relay.Identity, bool) {
	bundles, err := d.relay.Bundles(ctx, userID, deviceID)
	if err != nil {
		return relay.Identity{}, false
	}
	for _, b := range bundles {
		if b.UserID == userID && b.DeviceID == deviceID &&
			protocol.VerifySPK(b.SIK, []byte(b.SPK.KeyID), b.SPK.Pub, b.IK, b.SPK.Sig) == nil {
			return relay.Identity{UserID: userID, DeviceID: deviceID, RegistrationID: b.RegistrationID, IK: b.IK, SIK: b.SIK}, true
		}
	}
	return relay.Identity{}, false
}

// handleReset honours a SPEC §4 reset notice naming the current session's sending ratchet
// key (the next message bootstraps afresh); any other notice is ignored.
func (d *Device) handleReset(sender string, notice []byte) {
	if r := d.sessions[sender]; r != nil {
		_, _ = r.HandleReset(notice)
	}
}

// sendReset tells the one device whose frame could not be decrypted to start over
// (SPEC §4): a bare "SRS1" || ratchet key envelope, which the relay routes to that device
// alone (docs/server.md "Reset notices"). A relay that routes only SMX1/DR_V1 answers
// 422 unknown_envelope_type; then, while a session with the sender can still send, the
// notice travels end to end as a "reset" content. Best effort: on any other refusal (the
// device is gone or re-registered) its next SMX1 starts afresh anyway.
func (d *Device) sendReset(ctx context.Context, userID, deviceID string, notice []byte) {
	id, err := d.rng.RandomBytes(16, "message_id")
	if err != nil {
		return
	}
	messageID := hex.EncodeToString(id)
	reg, known := d.directory[userID][deviceID]
	if !known {
		found, ok := d.lookupIdentity(ctx, userID, deviceID)
		if !ok {
			return
		}
		reg = found.RegistrationID
	}
	_, err = d.relay.Send(ctx, userID, relay.SendRequest{MessageID: messageID,
		Envelopes: []relay.Envelope{{DeviceID: deviceID, RegistrationID: reg, Body: notice}}})
	if relay.IsCode(err, 422, "unknown_envelope_type") && d.hasSession(Address(userID, deviceID)) {
		c := content.Content{ID: messageID, Kind: content.KindReset, At: unixSeconds(d.host.Now()), Body: notice}
		_, err = d.sendToUser(ctx, userID, c.Encode(), c.ID, true, true)
	}
	if err == nil {
		d.stats.ResetsSent++
	}
}

// replenishPrekeys tops up the relay's one-time prekeys after a peer bootstrapped with us
// (best effort: ReplenishPrekeys, as Signal clients do).
func (d *Device) replenishPrekeys(ctx context.Context) {
	_, _ = d.replenish(ctx)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
