package protocol

import "bytes"

// OpenOutbound decrypts a frame (bare DR_V1, or wrapped in the SMX1 of a session's
// bootstrap) that this device sent to the record's remote device, from the sending chain as
// it stands, without changing any state: what an adversary holding a stolen state reads of
// the device's own traffic until its next DH ratchet step (SPEC §3 post-compromise
// security; the reference harness's simulator/adversary.py does the same with its state).
func (r *SessionRecord) OpenOutbound(body []byte) ([]byte, bool) {
	for _, s := range r.sessions() {
		frameBytes := body
		if bytes.HasPrefix(body, SMX1Magic[:3]) {
			m, err := ParseSMX1(body)
			if err != nil {
				return nil, false
			}
			sk := s.SK
			if s.Initiator != nil {
				sk = s.Initiator.SK
			}
			if sk == nil || !bytes.Equal(s.EK, m.EK) {
				continue
			}
			if frameBytes, err = OpenSMX1(sk, s.Ratchet.AD, m); err != nil {
				continue
			}
		}
		f, err := ParseFrame(frameBytes)
		if err != nil {
			continue
		}
		rt := s.Ratchet
		if rt.CKs == nil || rt.PendingStep || !bytes.Equal(f.DH, rt.DHs.Public) || f.N < rt.Ns || f.N-rt.Ns > MaxSkip {
			continue
		}
		ck := rt.CKs
		for i := rt.Ns; i < f.N; i++ {
			_, ck = KDFCK(ck)
		}
		mk, _ := KDFCK(ck)
		if pt, err := rt.open(f, mk); err == nil {
			return pt, true
		}
	}
	return nil, false
}
