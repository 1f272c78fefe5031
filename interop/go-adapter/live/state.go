package live

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"semafore.local/goadapter/protocol"
	"semafore.local/goadapter/relay"
)

// Snapshot is a copy of a device's state as an app backup holds it: private keys, pinned
// identities, sessions, the device directory and the message ids seen (issue #15 item 4,
// docs/adapter-contract.md §5 "live.state.export"). It never holds the random source: a
// restored or cloned device draws fresh nonces, which is what keeps AES-GCM safe when it
// re-derives message keys it already used (SPEC §3).
type Snapshot struct {
	from       string
	keys       protocol.Device
	identities protocol.IdentityStore
	sessions   map[string]*protocol.SessionRecord
	directory  map[string]map[string]int64
	seen       map[string]bool
	seenOrder  []string
	rng        protocol.Entropy // only in a build with restoresRandomSource (never correct)
}

// restoresRandomSource is false in every correct build. The test-only build tag
// brokenrestore (broken_restore.go) sets it: the backup then carries the random source and a
// restore or clone puts the old nonce counter back, the defect no_key_nonce_reuse must catch
// (tests/interop/test_impl_scenarios.py).
var restoresRandomSource = false

// snapshotPrefix marks the opaque state this process hands out: a handle to a Snapshot it
// keeps (the contract lets the state be opaque; it only ever comes back to this process).
const snapshotPrefix = "goadapter-snapshot:"

func (d *Device) snapshot() *Snapshot {
	s := &Snapshot{
		from:       d.Address(),
		keys:       *d.keys,
		identities: d.identities.Clone(),
		sessions:   map[string]*protocol.SessionRecord{},
		directory:  map[string]map[string]int64{},
		seen:       maps.Clone(d.seen),
		seenOrder:  slices.Clone(d.seenOrder),
	}
	if seeded, ok := d.rng.(*protocol.SeededEntropy); ok && restoresRandomSource {
		c := *seeded
		s.rng = &c
	}
	s.keys.SPKs = slices.Clone(d.keys.SPKs)
	s.keys.OPKs = slices.Clone(d.keys.OPKs)
	for address, r := range d.sessions {
		s.sessions[address] = r.Clone()
	}
	for user, devices := range d.directory {
		s.directory[user] = maps.Clone(devices)
	}
	return s
}

// ExportState copies the device's state and returns its opaque handle (hex).
func (h *Host) ExportState(d *Device) string {
	h.snapshots = append(h.snapshots, d.snapshot())
	return hex.EncodeToString(fmt.Appendf(nil, "%s%d", snapshotPrefix, len(h.snapshots)-1))
}

// ImportState puts an exported state onto d. Its own state rolls the device back (it keeps
// its relay login); another device's state (same user) makes d a clone: the relay never lets
// a registered device change identity keys, so d unregisters, logs in again and publishes
// the cloned identity and prekeys. The random source is d's own either way.
func (h *Host) ImportState(d *Device, state string) error {
	s, err := h.snapshotByHandle(state)
	if err != nil {
		return err
	}
	if s.keys.UserID != d.UserID {
		return protocol.Malformed("args.state", "a state of %s cannot go onto %s (another user)", s.from, d.Address())
	}
	clone := s.from != d.Address()
	if clone {
		if _, err := d.connected(); err != nil {
			return err
		}
	}
	restored := d.snapshotOf(s)
	if s.rng != nil { // the broken build only
		c := *s.rng.(*protocol.SeededEntropy)
		d.rng = &c
	}
	if !clone {
		return nil
	}
	return restored.relogin()
}

// snapshotByHandle is the snapshot an exported state names (MalformedEnvelope naming
// args.state for anything else).
func (h *Host) snapshotByHandle(state string) (*Snapshot, error) {
	raw, err := hex.DecodeString(state)
	var index int
	if err == nil {
		_, err = fmt.Sscanf(string(raw), snapshotPrefix+"%d", &index)
	}
	if err != nil || index < 0 || index >= len(h.snapshots) {
		return nil, protocol.Malformed("args.state", "not a state this adapter process exported")
	}
	return h.snapshots[index], nil
}

// snapshotOf copies s into d (fresh copies: the snapshot can be imported again).
func (d *Device) snapshotOf(s *Snapshot) *Device {
	c := *s
	fresh := (&Device{keys: &c.keys, identities: c.identities, sessions: c.sessions,
		directory: c.directory, seen: c.seen, seenOrder: c.seenOrder}).snapshot()
	keys := fresh.keys
	keys.UserID, keys.DeviceID = d.UserID, d.DeviceID
	d.keys = &keys
	d.identities = fresh.identities
	d.sessions = fresh.sessions
	d.directory = fresh.directory
	d.seen = fresh.seen
	d.seenOrder = fresh.seenOrder
	return d
}

// relogin unregisters the device and registers it again with its current keys.
func (d *Device) relogin() error {
	client, err := d.connected()
	if err != nil {
		return err
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := client.RemoveDevice(ctx, d.DeviceID); err != nil {
		return relayError(err)
	}
	d.disconnect()
	fresh, err := relay.New(d.relayURL, d.host.HTTP)
	if err != nil {
		return protocol.Malformed("args.relay", "%v", err)
	}
	return relayError(d.login(ctx, fresh))
}

// MaxPendingSecrets bounds what live.secrets holds between two calls; beyond, it counts drops.
const MaxPendingSecrets = 200000

// Secret is one secret the protocol drew or derived (kind names of the reference registry).
type Secret struct {
	Kind  string `json:"kind"`
	Value string `json:"value"` // hex
}

// Secrets answers live.secrets: every secret derived since the last call and how many could
// not be kept. The first call switches reporting on and answers nothing (issue 15 item 2).
func (h *Host) Secrets() ([]Secret, int) {
	if !h.secretsOn {
		h.secretsOn = true
		protocol.SecretSink = func(kind string, value []byte) {
			if len(h.secrets) >= MaxPendingSecrets {
				h.secretsDropped++
				return
			}
			h.secrets = append(h.secrets, Secret{Kind: kind, Value: hex.EncodeToString(value)})
		}
		return []Secret{}, 0
	}
	out, dropped := h.secrets, h.secretsDropped
	if out == nil {
		out = []Secret{}
	}
	h.secrets, h.secretsDropped = nil, 0
	return out, dropped
}
