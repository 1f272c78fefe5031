package live

import (
	"testing"

	"semafore.local/goadapter/relay"
)

func ids(envs []relay.QueuedEnvelope) []string {
	out := make([]string, 0, len(envs))
	for _, e := range envs {
		out = append(out, e.DeliveryID)
	}
	return out
}

func envs(names ...string) []relay.QueuedEnvelope {
	out := make([]relay.QueuedEnvelope, 0, len(names))
	for _, n := range names {
		out = append(out, relay.QueuedEnvelope{DeliveryID: n})
	}
	return out
}

// What Receive opens of the pushed frames and a fetched page: pushes first in arrival order
// (a dropped push, d2, is opened late from the queue, as a push-driven client does), each
// delivery once; a pushed repeat of a delivery opened from the socket counts as a duplicate
// dropped, a push of one already opened from the queue does not.
func TestUnopenedOpensPushesFirstAndEachDeliveryOnce(t *testing.T) {
	d := &Device{opened: map[string]byte{}}
	got := ids(d.unopened(envs("d1", "d3", "d1"), envs("d1", "d2", "d3")))
	if want := []string{"d1", "d3", "d2"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("opened %v, want %v", got, want)
	}
	if d.stats.DuplicatesDropped != 1 {
		t.Fatalf("the network's second copy of d1 is one duplicate dropped, counted %d", d.stats.DuplicatesDropped)
	}
	d.markOpened("d1", fromPush)
	d.markOpened("d2", fromQueue)
	got = ids(d.unopened(envs("d1", "d2", "replay0"), envs("d1", "d4")))
	if len(got) != 2 || got[0] != "replay0" || got[1] != "d4" {
		t.Fatalf("opened %v, want the replay and the new queued envelope", got)
	}
	if d.stats.DuplicatesDropped != 2 {
		t.Fatalf("only the repeat of a pushed delivery counts, counted %d", d.stats.DuplicatesDropped)
	}
}
