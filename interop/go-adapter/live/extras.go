package live

// What a client app does beyond text messages (docs/adapter-contract.md §5 "Further
// operations"): read receipts, attachments (ADR-0157), admin broadcasts (ADR-0158), signed
// prekey rotation and one-time prekey top-up. Each mirrors the reference client
// (semafore/client/client.py) on the wire.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"

	"semafore.local/goadapter/content"
	"semafore.local/goadapter/protocol"
	"semafore.local/goadapter/relay"
)

// AttachmentAAD is the associated data of every attachment blob (the reference's
// semafore/client/attachments.py AAD).
var AttachmentAAD = []byte("SemaFore-attachment-v1")

// SendReceipt sends a read receipt for messageIDs to every device of user `to` (and sync
// copies): a content of kind "receipt" with an empty body and "rcpt" (contract §5).
func (d *Device) SendReceipt(to string, messageIDs []string, receiptID string) ([]SentEnvelope, error) {
	if len(messageIDs) == 0 {
		return nil, protocol.Malformed("args.message_ids", "a receipt acknowledges at least one message id")
	}
	c := content.Content{ID: receiptID, Kind: content.KindReceipt, At: unixSeconds(d.host.Now()), Rcpt: slices.Clone(messageIDs)}
	sent, _, err := d.sendContent([]string{to}, c, true)
	return sent, err
}

// Attachment is a sent attachment: the relay's file id and the key that opens the blob.
type Attachment struct {
	FileID string
	Key    []byte
}

// Attach encrypts data with a fresh AES-256-GCM key (blob = nonce ‖ ciphertext+tag, AAD
// AttachmentAAD), declares and uploads the blob once for every recipient user, and sends the
// pointer (file id, key, SHA-256 of the blob, size) with the caption as one message to the
// users `to` (sendContent: one message id, one sync copy).
func (d *Device) Attach(to []string, data, caption []byte, messageID string) ([]SentEnvelope, map[string]error, Attachment, error) {
	client, err := d.connected()
	if err != nil {
		return nil, nil, Attachment{}, err
	}
	key, err := d.rng.RandomBytes(32, "attachment_key")
	if err != nil {
		return nil, nil, Attachment{}, err
	}
	nonce, err := d.rng.RandomBytes(12, protocol.PurposeNonce)
	if err != nil {
		return nil, nil, Attachment{}, err
	}
	blob := append(slices.Clone(nonce), protocol.Seal(key, nonce, data, AttachmentAAD)...)
	digest := sha256.Sum256(blob)
	users := slices.Compact(slices.Sorted(slices.Values(to)))
	ctx, cancel := opContext()
	defer cancel()
	fileID, err := client.DeclareAttachment(ctx, len(blob), digest[:], users)
	if err != nil {
		return nil, nil, Attachment{}, relayError(err)
	}
	if err := client.UploadAttachment(ctx, fileID, blob); err != nil {
		return nil, nil, Attachment{}, relayError(err)
	}
	c := content.Content{ID: messageID, Kind: content.KindAttachment, At: unixSeconds(d.host.Now()), Body: caption,
		Attachment: &content.Attachment{FileID: fileID, Key: key, SHA256: digest[:], Size: len(data)}}
	sent, failed, err := d.sendContent(users, c, true)
	return sent, failed, Attachment{FileID: fileID, Key: key}, err
}

// fetchAttachment downloads a pointer's blob, checks its SHA-256 before anything else and
// opens it (the reference's attachments.open_blob).
func (d *Device) fetchAttachment(ctx context.Context, a *content.Attachment) ([]byte, error) {
	blob, err := d.relay.FetchAttachment(ctx, a.FileID)
	if err != nil {
		return nil, relayError(err)
	}
	if sum := sha256.Sum256(blob); !bytes.Equal(sum[:], a.SHA256) {
		return nil, protocol.Malformed("attachment.sha256", "the blob's SHA-256 does not match the message")
	}
	if len(blob) < 12+16 {
		return nil, protocol.Malformed("attachment.blob", "attachment blob too short")
	}
	return protocol.Open(a.Key, blob[:12], blob[12:], AttachmentAAD, "attachment.tag")
}

// Broadcast is an admin broadcast (ADR-0158): the content (kind "broadcast") encrypted for
// every device of every user of `to` but the sender's own, sent in one all-or-nothing
// POST /v1/broadcasts; a 409/410 names each user's device set to repair, then it is tried
// again. No sync copies (as the reference client).
func (d *Device) Broadcast(to []string, body []byte, messageID string) ([]SentEnvelope, error) {
	client, err := d.connected()
	if err != nil {
		return nil, err
	}
	users := slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(to))), func(u string) bool { return u == d.UserID })
	if len(users) == 0 {
		return nil, protocol.Malformed("args.to", "a broadcast needs a recipient other than the sender's user")
	}
	c := content.Content{ID: messageID, Kind: content.KindBroadcast, At: unixSeconds(d.host.Now()), Body: body}
	plaintext := c.Encode()
	ctx, cancel := opContext()
	defer cancel()
	for attempt := 0; attempt <= MaxDeviceSetRetries; attempt++ {
		req := relay.BroadcastRequest{MessageID: messageID}
		var sent []SentEnvelope
		for _, user := range users {
			devices, err := d.prepare(ctx, user)
			if err != nil {
				return nil, relayError(err)
			}
			ids := make([]string, 0, len(devices))
			for id := range devices {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			r := relay.BroadcastRecipient{UserID: user}
			for _, id := range ids {
				address := Address(user, id)
				env, err := d.sessions[address].Encrypt(plaintext, d.rng)
				if err != nil {
					return nil, err
				}
				sent = append(sent, SentEnvelope{To: address, Body: env})
				r.Envelopes = append(r.Envelopes, relay.Envelope{DeviceID: id, RegistrationID: devices[id], Body: env})
			}
			if len(r.Envelopes) > 0 {
				req.Recipients = append(req.Recipients, r)
			}
		}
		err := client.Broadcast(ctx, req)
		if err == nil {
			return sent, nil
		}
		var rej *relay.Rejected
		if !errors.As(err, &rej) || !(rej.Status == 409 && rej.Code == "mismatched_devices" || rej.Status == 410 && rej.Code == "stale_devices") {
			return nil, relayError(err)
		}
		for _, part := range append(rej.Mismatched, rej.StaleUsers...) {
			sub := &relay.Rejected{Status: rej.Status, Code: rej.Code, Missing: part.Missing, Extra: part.Extra, Stale: part.Stale}
			if _, err := d.repair(ctx, part.UserID, sub); err != nil {
				return nil, relayError(err)
			}
		}
		d.stats.DeviceSetRetries++
	}
	return nil, &protocol.Error{Name: ErrRelay, Field: "relay", Detail: fmt.Sprintf("the device sets kept changing after %d retries", MaxDeviceSetRetries)}
}

// RotateSPK draws a new signed prekey, publishes it (PUT /v1/keys/spk) and makes it
// current. keepPrevious keeps the rotated ones (protocol.PreviousSPKs) so an SMX1 in flight
// still opens; otherwise they are deleted at once. Returns the old and the new key id.
func (d *Device) RotateSPK(keepPrevious bool) (string, string, error) {
	client, err := d.connected()
	if err != nil {
		return "", "", err
	}
	old := string(d.keys.SPKs[0].KeyID)
	d.spkSerial++
	next := fmt.Sprintf("spk-r%d", d.spkSerial)
	rotated := *d.keys
	rotated.SPKs = slices.Clone(d.keys.SPKs)
	if err := rotated.RotateSPK([]byte(next), d.rng); err != nil {
		return "", "", err
	}
	ctx, cancel := opContext()
	defer cancel()
	spk := rotated.SPKs[0]
	if err := client.RotateSPK(ctx, relay.SignedPrekey{KeyID: next, Pub: spk.Pair.Public, Sig: rotated.SPKSig}); err != nil {
		return "", "", relayError(err) // the relay kept the old one: so does the device
	}
	if !keepPrevious {
		rotated.SPKs = rotated.SPKs[:1]
	}
	*d.keys = rotated
	return old, next, nil
}

// ReplenishPrekeys tops the relay's one-time prekeys up to the device's OPK count when fewer
// than half are left (the reference's maintain_prekeys); returns how many it uploaded.
func (d *Device) ReplenishPrekeys() (int, error) {
	if _, err := d.connected(); err != nil {
		return 0, err
	}
	ctx, cancel := opContext()
	defer cancel()
	n, err := d.replenish(ctx)
	return n, relayError(err)
}

func (d *Device) replenish(ctx context.Context) (int, error) {
	count, err := d.relay.KeyCount(ctx)
	if err != nil {
		return 0, err
	}
	if count.OPKCount*2 >= d.opkCount {
		return 0, nil
	}
	before := len(d.keys.OPKs)
	if err := d.keys.AddOPKs(d.opkCount-count.OPKCount, d.rng); err != nil {
		return 0, err
	}
	fresh := d.keys.OPKs[before:]
	upload := make([]relay.OPK, 0, len(fresh))
	for _, o := range fresh {
		upload = append(upload, relay.OPK{KeyID: string(o.KeyID), Pub: o.Pair.Public})
	}
	if err := d.relay.AddOPKs(ctx, upload); err != nil {
		return 0, err
	}
	return len(upload), nil
}

// ReportScreenshot tells the organisation that a conversation with peer was captured
// (POST /v1/screenshots, ADR-0159): the SHA-256 of the image and the message ids it shows,
// never the image itself.
func (d *Device) ReportScreenshot(peer string, image []byte, messageIDs []string) (string, error) {
	client, err := d.connected()
	if err != nil {
		return "", err
	}
	ctx, cancel := opContext()
	defer cancel()
	sum := sha256.Sum256(image)
	report, err := client.ReportScreenshot(ctx, relay.ScreenshotReport{PeerUserID: peer, SHA256: sum[:],
		MessageIDs: messageIDs, CapturedAt: unixSeconds(d.host.Now())})
	return report, relayError(err)
}

// NewMessageID draws a fresh message id (16 random bytes, hex), as the reference client does.
func (d *Device) NewMessageID() (string, error) {
	id, err := d.rng.RandomBytes(16, "message_id")
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(id), nil
}
