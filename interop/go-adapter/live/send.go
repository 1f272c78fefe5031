package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"semafore.local/goadapter/content"
	"semafore.local/goadapter/protocol"
	"semafore.local/goadapter/relay"
)

// MaxDeviceSetRetries is how often one send repairs its device set (409/410) before giving up.
const MaxDeviceSetRetries = 4

// SentEnvelope is one envelope as sent (or withheld): to a device of the recipient, or a
// sync copy to another device of the sender's own user.
type SentEnvelope struct {
	To   string // address
	Body []byte // whole SMX1 or DR_V1 envelope
	Sync bool   // a sync copy (docs/adapter-contract.md §5: live.send lists these too)
}

// Send encrypts a text message for every device of user `to` and, as sync copies naming
// the conversation, for every other device of the sender's user, and hands them to the
// relay (deliver=false: encrypts, advancing every chain, but sends nothing — a lost
// message). It returns every envelope it encrypted: those to `to`'s devices, sorted by
// address, then the sync copies, sorted by address — the gate scans each one that went on
// the wire and fails a sender whose receiver fetches an envelope it did not list.
func (d *Device) Send(to string, body []byte, messageID string, deliver bool) ([]SentEnvelope, error) {
	sent, _, err := d.SendToUsers([]string{to}, body, messageID, deliver)
	return sent, err
}

// SendToUsers is Send to several users as ONE message (one message id, as the reference
// client does, issue #11): each peer user's devices get an envelope, and the sender's other
// devices get one sync copy naming every peer ("bob,carol": sorted, joined by ','). A peer
// that cannot be reached does not stop the others: failed maps it to why, and the sync copy
// still goes out when any peer was reached. With a single target its failure is err.
func (d *Device) SendToUsers(to []string, body []byte, messageID string, deliver bool) ([]SentEnvelope, map[string]error, error) {
	c := content.Content{ID: messageID, Kind: content.KindText, At: unixSeconds(d.host.Now()), Body: body}
	return d.sendContent(to, c, deliver)
}

// sendContent sends c to every device of the users `to` plus one sync copy (SendToUsers).
func (d *Device) sendContent(to []string, c content.Content, deliver bool) ([]SentEnvelope, map[string]error, error) {
	if _, err := d.connected(); err != nil {
		return nil, nil, err
	}
	messageID := c.ID
	users := slices.Compact(slices.Sorted(slices.Values(to)))
	if len(users) == 0 {
		return nil, nil, protocol.Malformed("args.to", "a message needs at least one recipient user")
	}
	peers := slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == d.UserID })
	targets := peers
	if len(targets) == 0 {
		targets = users // a message to one's own other devices only
	}
	ctx, cancel := opContext()
	defer cancel()
	var sent []SentEnvelope
	failed := map[string]error{}
	for _, user := range targets {
		got, err := d.sendToUser(ctx, user, c.Encode(), messageID, deliver, false)
		if err != nil {
			if len(targets) == 1 {
				return nil, nil, relayError(err)
			}
			failed[user] = relayError(err)
			continue
		}
		sent = append(sent, got...)
	}
	sort.SliceStable(sent, func(i, j int) bool { return sent[i].To < sent[j].To })
	if len(peers) > 0 && len(failed) < len(peers) {
		c.SyncTo = strings.Join(peers, ",")
		copies, err := d.sendToUser(ctx, d.UserID, c.Encode(), messageID, deliver, true)
		if err != nil {
			return nil, nil, relayError(err)
		}
		for _, e := range copies {
			e.Sync = true
			sent = append(sent, e)
		}
	}
	return sent, failed, nil
}

// sendToUser encrypts plaintext once per device of userID (the sender's other devices when
// userID is its own) and sends the set, repairing it on 409/410 and encrypting again.
// allowEmpty: a user without devices is no error (a sync copy when there is no other device).
func (d *Device) sendToUser(ctx context.Context, userID string, plaintext []byte, messageID string, deliver, allowEmpty bool) ([]SentEnvelope, error) {
	for attempt := 0; attempt <= MaxDeviceSetRetries; attempt++ {
		devices, err := d.prepare(ctx, userID)
		if err != nil {
			return nil, err
		}
		if len(devices) == 0 {
			if allowEmpty {
				return nil, nil
			}
			return nil, &protocol.Error{Name: ErrRelay, Field: "args.to", Detail: fmt.Sprintf("%s has no device with published keys", userID)}
		}
		ids := make([]string, 0, len(devices))
		for id := range devices {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		req := relay.SendRequest{MessageID: messageID}
		sent := make([]SentEnvelope, 0, len(ids))
		for _, id := range ids {
			address := Address(userID, id)
			env, err := d.sessions[address].Encrypt(plaintext, d.rng)
			if err != nil {
				return nil, err
			}
			sent = append(sent, SentEnvelope{To: address, Body: env})
			req.Envelopes = append(req.Envelopes, relay.Envelope{DeviceID: id, RegistrationID: devices[id], Body: env})
		}
		if !deliver {
			return sent, nil
		}
		_, err = d.relay.Send(ctx, userID, req)
		if err == nil {
			return sent, nil
		}
		if repaired, rerr := d.repair(ctx, userID, err); rerr != nil {
			return nil, rerr
		} else if !repaired {
			return nil, err
		}
		d.stats.DeviceSetRetries++
	}
	return nil, &protocol.Error{Name: ErrRelay, Field: "relay", Detail: fmt.Sprintf("the device set of %s kept changing after %d retries", userID, MaxDeviceSetRetries)}
}

// prepare returns the devices of userID to encrypt to (device id -> registration id), each
// with a current session. A peer's devices are fetched once (GET /v1/keys/{user}) and then
// kept until the relay says otherwise (409/410); the sender's own devices are listed on
// every send (GET /v1/devices), so a sync copy reaches a device added since.
func (d *Device) prepare(ctx context.Context, userID string) (map[string]int64, error) {
	if userID == d.UserID {
		listed, err := d.relay.Devices(ctx)
		if err != nil {
			return nil, err
		}
		devices := map[string]int64{}
		for _, info := range listed {
			if info.DeviceID != d.DeviceID {
				devices[info.DeviceID] = info.RegistrationID
			}
		}
		for id, reg := range d.directory[userID] {
			if devices[id] != reg {
				d.forget(Address(userID, id)) // removed or re-registered since
			}
		}
		d.directory[userID] = devices
	} else if _, known := d.directory[userID]; !known {
		bundles, err := d.relay.Bundles(ctx, userID, "")
		if relay.IsCode(err, 404, "no_keys") {
			d.directory[userID] = map[string]int64{}
		} else if err != nil {
			return nil, err
		}
		for _, b := range bundles {
			if err := d.adopt(b); err != nil {
				return nil, err
			}
		}
	}
	ready := map[string]int64{}
	for id := range d.directory[userID] {
		if !d.hasSession(Address(userID, id)) {
			if err := d.fetch(ctx, userID, id); err != nil {
				return nil, err
			}
		}
		if d.hasSession(Address(userID, id)) {
			ready[id] = d.directory[userID][id]
		}
	}
	return ready, nil
}

// fetch adopts one device's bundle; a device without published keys is skipped.
func (d *Device) fetch(ctx context.Context, userID, deviceID string) error {
	bundles, err := d.relay.Bundles(ctx, userID, deviceID)
	if relay.IsCode(err, 404, "no_keys") {
		return nil
	}
	if err != nil {
		return err
	}
	for _, b := range bundles {
		if b.UserID != userID || b.DeviceID != deviceID {
			continue
		}
		if err := d.adopt(b); err != nil {
			return err
		}
	}
	return nil
}

// repair answers a device-set refusal like Signal clients: 409 drops the extra devices
// (archiving their sessions) and fetches the missing ones; 410 archives the sessions of the
// re-registered devices and fetches their new bundles (a new identity, trusted on change).
// False: err is not a device-set refusal.
func (d *Device) repair(ctx context.Context, userID string, err error) (bool, error) {
	var rej *relay.Rejected
	if !errors.As(err, &rej) {
		return false, nil
	}
	devices := d.directory[userID]
	if devices == nil {
		devices = map[string]int64{}
		d.directory[userID] = devices
	}
	switch {
	case rej.Status == 409 && rej.Code == "mismatched_devices":
		for _, gone := range rej.Extra {
			delete(devices, gone)
			d.forget(Address(userID, gone))
		}
		for _, added := range rej.Missing {
			if err := d.fetch(ctx, userID, added); err != nil {
				return false, err
			}
		}
		return true, nil
	case rej.Status == 410 && rej.Code == "stale_devices":
		for _, stale := range rej.Stale {
			delete(devices, stale)
			d.forget(Address(userID, stale))
			if err := d.fetch(ctx, userID, stale); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	return false, nil
}
