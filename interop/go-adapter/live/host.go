// Package live hosts live devices for the live interop gate (SPEC §7, docs/adapter-contract.md
// §5): each device has its own keys, sessions and relay connection and holds real
// conversations with other platforms' devices through a relay.
//
// What a device decides is the protocol core's (package protocol: X3DH, SMX1 until the first
// reply, the Double Ratchet, archived sessions); this package adds what a client app adds:
// the relay's HTTP API (package relay), the content encoding (package content), fan-out to
// every device of the recipient plus sync copies to the sender's other devices, repair of
// the device set on 409/410, trust on first use (and on change, as the gate's users do), and
// dropping duplicate message ids.
package live

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"semafore.local/goadapter/protocol"
	"semafore.local/goadapter/relay"
)

// DefaultOPKCount is how many one-time prekeys a new device publishes.
const DefaultOPKCount = 20

// MaxOPKCount bounds opk_count (the relay takes at most 100 per upload).
const MaxOPKCount = 100

// OpTimeout bounds the relay traffic of one operation.
const OpTimeout = 30 * time.Second

// ErrRelay is the contract's non-SPEC error name for a relay refusal the adapter cannot
// repair (the gate reports it as the step's error).
const ErrRelay = "RelayError"

// Host is every live device of one adapter process, by address "user:device". Operations
// run one at a time (the adapter contract is sequential), so Host needs no locking.
type Host struct {
	devices map[string]*Device
	// snapshots are the states live.state.export handed out, by index (live/state.go)
	snapshots []*Snapshot
	// secrets collects what protocol.SecretSink reports once live.secrets switched it on
	secrets        []Secret
	secretsOn      bool
	secretsDropped int
	// HTTP is the client each device's relay connection uses (nil: relay's default).
	HTTP *http.Client
	// Now is the clock of content timestamps and of nothing else.
	Now func() time.Time
}

// NewHost builds an empty host.
func NewHost() *Host {
	return &Host{devices: map[string]*Device{}, Now: time.Now}
}

// Bundle is the public half of a fresh install, as live.device.create answers it.
type Bundle struct {
	IK       string    `json:"ik"`
	SIK      string    `json:"sik"`
	SPK      SPKPublic `json:"spk"`
	OPKCount int       `json:"opk_count"`
}

// SPKPublic is the signed prekey of a Bundle (hex).
type SPKPublic struct {
	KeyID string `json:"key_id"`
	Pub   string `json:"pub"`
	Sig   string `json:"sig"`
}

// Address is "user:device" (SPEC §2 step 6).
func Address(userID, deviceID string) string { return userID + ":" + deviceID }

func noDevice(address string) error {
	return &protocol.Error{Name: protocol.ErrNoSession, Field: "args.device", Detail: fmt.Sprintf("no live device %q", address)}
}

// Device returns the device with this address (NoSession naming args.device otherwise).
func (h *Host) Device(address string) (*Device, error) {
	d, ok := h.devices[address]
	if !ok {
		return nil, noDevice(address)
	}
	return d, nil
}

// Create installs a new device (not yet known to any relay). seed "" draws from the OS
// CSPRNG; otherwise every random value derives from seed, the address and the install's
// generation.
func (h *Host) Create(userID, deviceID, seed string, opkCount int) (*Device, error) {
	if userID == "" || strings.Contains(userID, ":") {
		return nil, protocol.Malformed("args.user_id", "user_id must be non-empty without ':'")
	}
	if deviceID == "" || strings.Contains(deviceID, ":") {
		return nil, protocol.Malformed("args.device_id", "device_id must be non-empty without ':'")
	}
	if opkCount < 1 || opkCount > MaxOPKCount {
		return nil, protocol.Malformed("args.opk_count", "opk_count must be 1..%d", MaxOPKCount)
	}
	address := Address(userID, deviceID)
	if _, ok := h.devices[address]; ok {
		return nil, protocol.Malformed("args.device_id", "device %q already exists", address)
	}
	d := &Device{host: h, UserID: userID, DeviceID: deviceID, seed: seed, opkCount: opkCount}
	if err := d.install(); err != nil {
		return nil, err
	}
	h.devices[address] = d
	return d, nil
}

// Close forgets a device (its relay registration stays, as when an app is closed).
func (h *Host) Close(address string) error {
	d, err := h.Device(address)
	if err != nil {
		return err
	}
	d.disconnect()
	delete(h.devices, address)
	return nil
}

// Remove unregisters a device at the relay (its keys and queue go, its sessions end) and
// forgets it.
func (h *Host) Remove(address string) error {
	d, err := h.Device(address)
	if err != nil {
		return err
	}
	client, err := d.connected()
	if err != nil {
		return err
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := client.RemoveDevice(ctx, d.DeviceID); err != nil {
		return relayError(err)
	}
	return h.Close(address)
}

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), OpTimeout)
}

// relayError maps what the relay client returned to the contract's error names: protocol
// errors pass through, relay refusals and transport failures become RelayError with the
// HTTP status (or the failure) in the detail.
func relayError(err error) error {
	if err == nil {
		return nil
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	var rej *relay.Rejected
	if errors.As(err, &rej) {
		return &protocol.Error{Name: ErrRelay, Field: "relay", Detail: rej.Error()}
	}
	return &protocol.Error{Name: ErrRelay, Field: "relay", Detail: err.Error()}
}
