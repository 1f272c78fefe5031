package adapter

import "semafore.local/goadapter/live"

// Further live operations (docs/adapter-contract.md §5 "Further operations"): what a client
// app does beyond text messages, so a scenario can give any step to a device of this
// adapter (issue #15 item 3).
var extraOps = map[string]Handler{
	"live.receipt":        opLiveReceipt,
	"live.attach":         opLiveAttach,
	"live.broadcast":      opLiveBroadcast,
	"live.spk.rotate":     opLiveRotateSPK,
	"live.opks.replenish": opLiveReplenish,
	"live.remove":         opLiveRemove,
	"live.screenshot":     opLiveScreenshot,
	"live.state.attack":   opLiveStateAttack,
}

// ownMessageID is the optional message_id argument, or one the device draws (the contract
// lets the adapter choose; the result names the id it sent).
func ownMessageID(args Args, d *live.Device) (string, error) {
	if args.Has("message_id") {
		return args.String("message_id")
	}
	return d.NewMessageID()
}

func envelopesOf(sent []live.SentEnvelope) []map[string]any {
	out := make([]map[string]any, 0, len(sent))
	for _, e := range sent {
		envelope := map[string]any{"to": e.To, "body": hexOf(e.Body)}
		if e.Sync {
			envelope["sync"] = true
		}
		out = append(out, envelope)
	}
	return out
}

func failedOf(result map[string]any, failed map[string]error) map[string]any {
	if len(failed) > 0 {
		why := map[string]string{}
		for user, err := range failed {
			why[user] = err.Error()
		}
		result["failed"] = why
	}
	return result
}

func opLiveReceipt(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	to, err := args.String("to")
	if err != nil {
		return nil, err
	}
	ids, err := args.Users("message_ids")
	if err != nil {
		return nil, err
	}
	receiptID, err := ownMessageID(args, d)
	if err != nil {
		return nil, err
	}
	sent, err := d.SendReceipt(to, ids, receiptID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"message_id": receiptID, "envelopes": envelopesOf(sent)}, nil
}

func opLiveAttach(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	to, err := args.Users("to")
	if err != nil {
		return nil, err
	}
	data, err := args.Bytes("data")
	if err != nil {
		return nil, err
	}
	caption := []byte{}
	if args.Has("caption") {
		if caption, err = args.Bytes("caption"); err != nil {
			return nil, err
		}
	}
	messageID, err := ownMessageID(args, d)
	if err != nil {
		return nil, err
	}
	sent, failed, att, err := d.Attach(to, data, caption, messageID)
	if err != nil {
		return nil, err
	}
	return failedOf(map[string]any{"message_id": messageID, "envelopes": envelopesOf(sent),
		"file_id": att.FileID, "key": hexOf(att.Key)}, failed), nil
}

func opLiveBroadcast(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	to, err := args.Users("to")
	if err != nil {
		return nil, err
	}
	plaintext, err := args.Bytes("plaintext")
	if err != nil {
		return nil, err
	}
	messageID, err := ownMessageID(args, d)
	if err != nil {
		return nil, err
	}
	sent, err := d.Broadcast(to, plaintext, messageID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"message_id": messageID, "envelopes": envelopesOf(sent)}, nil
}

func opLiveRotateSPK(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	keep, err := args.Bool("keep_previous", true)
	if err != nil {
		return nil, err
	}
	old, next, err := d.RotateSPK(keep)
	if err != nil {
		return nil, err
	}
	return map[string]any{"previous": old, "key_id": next, "bundle": d.PublicBundle()}, nil
}

func opLiveReplenish(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	n, err := d.ReplenishPrekeys()
	if err != nil {
		return nil, err
	}
	return map[string]any{"uploaded": n}, nil
}

// opLiveRemove unregisters the device at the relay (DELETE /v1/devices/{id}: its keys and
// queue go) and forgets it, as a user removing a device from their account does.
func opLiveRemove(a *Adapter, args Args) (any, error) {
	address, err := args.String("device")
	if err != nil {
		return nil, err
	}
	if err := a.live.Remove(address); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// opLiveScreenshot reports a screenshot of a conversation (ADR-0159): only the image's
// SHA-256 and the message ids leave the device, never the image.
func opLiveScreenshot(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	peer, err := args.String("peer")
	if err != nil {
		return nil, err
	}
	image, err := args.Bytes("image")
	if err != nil {
		return nil, err
	}
	ids, err := args.Users("message_ids")
	if err != nil {
		return nil, err
	}
	report, err := d.ReportScreenshot(peer, image, ids)
	if err != nil {
		return nil, err
	}
	return map[string]any{"report_id": report}, nil
}

// opLiveStateAttack answers what an adversary holding an exported state reads of captured
// envelopes (live.Host.Attack): the harness's compromise of a device of this adapter.
func opLiveStateAttack(a *Adapter, args Args) (any, error) {
	state, err := args.String("state")
	if err != nil {
		return nil, err
	}
	ids, err := args.ObjectList("identities")
	if err != nil {
		return nil, err
	}
	identities := map[string][2][]byte{}
	for _, id := range ids {
		address, err := id.String("address")
		if err != nil {
			return nil, err
		}
		ik, err := id.Key("ik", 32)
		if err != nil {
			return nil, err
		}
		sik, err := id.Key("sik", 32)
		if err != nil {
			return nil, err
		}
		identities[address] = [2][]byte{ik, sik}
	}
	list, err := args.ObjectList("envelopes")
	if err != nil {
		return nil, err
	}
	envelopes := make([]live.Captured, 0, len(list))
	for _, e := range list {
		var c live.Captured
		if c.Sender, err = e.String("sender"); err != nil {
			return nil, err
		}
		if c.Recipient, err = e.String("recipient"); err != nil {
			return nil, err
		}
		if c.Body, err = e.Bytes("body"); err != nil {
			return nil, err
		}
		envelopes = append(envelopes, c)
	}
	opened, err := a.live.Attack(state, identities, envelopes)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(opened))
	for i, pt := range opened {
		if pt != nil {
			out[i] = hexOf(pt)
		}
	}
	return map[string]any{"plaintexts": out}, nil
}
