package protocol

// SecretSink, when set, receives every secret the protocol draws or derives, with the kind
// names of the reference's registry (semafore/protocol/secrets.py): the simulator's
// plaintext-absence oracle must search for every key a device holds, or a platform that
// logs its message keys passes oracle_clean (issue 15 item 2, live.secrets). nil (the
// default) reports nothing; only the adapter's live.secrets switches it on.
var SecretSink func(kind string, value []byte)

var drawnKinds = map[string]string{
	PurposeIdentityKey:  "IK private",
	PurposeSigningKey:   "SIK seed",
	PurposeSPK:          "SPK private",
	PurposeOPK:          "OPK private",
	PurposeRatchetKey:   "ratchet private",
	PurposeEphemeralKey: "X3DH ephemeral private",
}

func reportSecret(kind string, value []byte) {
	if SecretSink != nil {
		SecretSink(kind, append([]byte(nil), value...))
	}
}

// reportDrawn hands a private key drawn for purpose to the sink.
func reportDrawn(purpose string, private []byte) {
	if SecretSink != nil {
		reportSecret(drawnKinds[purpose], private)
	}
}
