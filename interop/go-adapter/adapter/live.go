package adapter

import (
	"semafore.local/goadapter/live"
	"semafore.local/goadapter/protocol"
)

// Live operations (docs/adapter-contract.md §5): devices hosted by this process, named by
// address, conversing through a relay. session.digest with "device" + "remote" is in ops.go.
var liveOps = map[string]Handler{
	"live.device.create": opLiveCreate,
	"live.register":      opLiveRegister,
	"live.send":          opLiveSend,
	"live.receive":       opLiveReceive,
	"live.reinstall":     opLiveReinstall,
	"live.close":         opLiveClose,
	"live.state.export":  opLiveStateExport,
	"live.state.import":  opLiveStateImport,
	"live.secrets":       opLiveSecrets,
	"live.stats":         opLiveStats,
}

func (a *Adapter) liveDevice(args Args) (*live.Device, error) {
	address, err := args.String("device")
	if err != nil {
		return nil, err
	}
	return a.live.Device(address)
}

func opLiveCreate(a *Adapter, args Args) (any, error) {
	user, err := args.String("user_id")
	if err != nil {
		return nil, err
	}
	device, err := args.String("device_id")
	if err != nil {
		return nil, err
	}
	seed := ""
	if args.Has("seed") {
		if seed, err = args.String("seed"); err != nil {
			return nil, err
		}
	}
	opks := live.DefaultOPKCount
	if args.Has("opk_count") {
		if opks, err = args.Int("opk_count", live.MaxOPKCount); err != nil {
			return nil, err
		}
	}
	d, err := a.live.Create(user, device, seed, opks)
	if err != nil {
		return nil, err
	}
	return map[string]any{"device": d.Address(), "bundle": d.PublicBundle()}, nil
}

func opLiveRegister(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	url, err := args.String("relay")
	if err != nil {
		return nil, err
	}
	org, err := args.String("org")
	if err != nil {
		return nil, err
	}
	otp, err := args.String("otp")
	if err != nil {
		return nil, err
	}
	totp := ""
	if args.Has("totp") {
		if totp, err = args.String("totp"); err != nil {
			return nil, err
		}
	}
	reg, err := d.Register(url, org, otp, totp)
	if err != nil {
		return nil, err
	}
	return map[string]any{"registration_id": reg}, nil
}

func opLiveSend(a *Adapter, args Args) (any, error) {
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
	messageID, err := args.String("message_id")
	if err != nil {
		return nil, err
	}
	deliver, err := args.Bool("deliver", true)
	if err != nil {
		return nil, err
	}
	sent, failed, err := d.SendToUsers(to, plaintext, messageID, deliver)
	if err != nil {
		return nil, err
	}
	envelopes := make([]map[string]any, 0, len(sent))
	for _, e := range sent {
		envelope := map[string]any{"to": e.To, "body": hexOf(e.Body)}
		if e.Sync {
			envelope["sync"] = true
		}
		envelopes = append(envelopes, envelope)
	}
	result := map[string]any{"message_id": messageID, "delivered": deliver, "envelopes": envelopes}
	if len(failed) > 0 {
		why := map[string]string{}
		for user, err := range failed {
			why[user] = err.Error()
		}
		result["failed"] = why
	}
	return result, nil
}

func opLiveReceive(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	order := "queue"
	if args.Has("order") {
		if order, err = args.String("order"); err != nil {
			return nil, err
		}
	}
	if order != "queue" && order != "reverse" {
		return nil, protocol.Malformed(args.field("order"), "order must be 'queue' or 'reverse'")
	}
	fetch, err := args.Bool("fetch", true)
	if err != nil {
		return nil, err
	}
	messages, err := d.Receive(order == "reverse", fetch)
	if err != nil {
		return nil, err
	}
	return map[string]any{"messages": messages}, nil
}

func opLiveReinstall(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	if err := d.Reinstall(); err != nil {
		return nil, err
	}
	return map[string]any{"device": d.Address(), "bundle": d.PublicBundle(), "registration_id": d.RegistrationID}, nil
}

func opLiveDigest(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	remote, err := args.String("remote")
	if err != nil {
		return nil, err
	}
	digest, err := d.Digest(remote)
	if err != nil {
		return nil, err
	}
	return map[string]any{"digest": hexOf(digest)}, nil
}

func opLiveClose(a *Adapter, args Args) (any, error) {
	address, err := args.String("device")
	if err != nil {
		return nil, err
	}
	if err := a.live.Close(address); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// opLiveStateExport answers the device's state, opaque (issue #15 item 4).
func opLiveStateExport(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	return map[string]any{"state": a.live.ExportState(d)}, nil
}

// opLiveStateImport puts an exported state onto a device: its own (a restore) or another
// device's of the same user (a clone).
func opLiveStateImport(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	state, err := args.String("state")
	if err != nil {
		return nil, err
	}
	if err := a.live.ImportState(d, state); err != nil {
		return nil, err
	}
	return map[string]any{"device": d.Address(), "bundle": d.PublicBundle(), "registration_id": d.RegistrationID}, nil
}

// opLiveSecrets answers every secret the protocol derived since the last call (the first call
// switches reporting on): the simulator's oracle registers them.
func opLiveSecrets(a *Adapter, _ Args) (any, error) {
	secrets, dropped := a.live.Secrets()
	return map[string]any{"secrets": secrets, "dropped": dropped}, nil
}

// opLiveStats answers the device's counters (live.Stats): the simulator adds them to its
// reference devices' mechanism statistics.
func opLiveStats(a *Adapter, args Args) (any, error) {
	d, err := a.liveDevice(args)
	if err != nil {
		return nil, err
	}
	return d.Stats(), nil
}
