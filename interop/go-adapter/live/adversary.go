package live

import (
	"bytes"
	"strings"

	"semafore.local/goadapter/protocol"
)

// Captured is one envelope as it crossed the wire (the harness's CapturedEnvelope).
type Captured struct {
	Sender, Recipient string // addresses
	Body              []byte
}

// Attack is what an adversary holding an exported state reads of the captured envelopes, in
// the order given (the wire's): frames to the device open with a copy of its state that
// advances as they do (a receiving chain followed across DH steps until a step the thief
// cannot compute), frames it sent open from its sending chain as stolen, and bytes already
// opened once are known whoever they were addressed to. identities are public identity keys
// the relay hands out (pinned where the state has none). nil: not opened.
func (h *Host) Attack(state string, identities map[string][2][]byte, envelopes []Captured) ([][]byte, error) {
	s, err := h.snapshotByHandle(state)
	if err != nil {
		return nil, err
	}
	user, device, _ := strings.Cut(s.from, ":")
	thief := (&Device{host: h, UserID: user, DeviceID: device, rng: protocol.SystemEntropy{}}).snapshotOf(s)
	stolen := (&Device{host: h, UserID: user, DeviceID: device, rng: protocol.SystemEntropy{}}).snapshotOf(s)
	for address, id := range identities {
		if _, _, ok := thief.identities.Pinned(address); !ok {
			thief.trust(address, id[0], id[1])
		}
	}
	out := make([][]byte, len(envelopes))
	var openedBodies, openedPlain [][]byte
	for i, env := range envelopes {
		for j, body := range openedBodies {
			if bytes.Equal(body, env.Body) {
				out[i] = openedPlain[j]
			}
		}
		if out[i] != nil {
			continue
		}
		if env.Sender == s.from {
			if r := stolen.sessions[env.Recipient]; r != nil {
				if pt, ok := r.OpenOutbound(env.Body); ok {
					out[i] = pt
				}
			}
		} else if pt, err := thief.decrypt(env.Sender, env.Body); err == nil {
			out[i] = pt
		}
		if out[i] != nil {
			openedBodies, openedPlain = append(openedBodies, env.Body), append(openedPlain, out[i])
		}
	}
	return out, nil
}
