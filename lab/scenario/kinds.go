package scenario

import "github.com/sessionpin/sessionpin/lab/client"

// Kind is what sort of user one client of a run is.
type Kind struct {
	Careless bool // never sets the critical flag
	Roaming  bool // travels between its region's edge and the next's
}

// Kinds returns the kind of each of n clients: the share careless of them
// careless, spread evenly over the numbering (client.IsCareless); and the
// share roam of the careless clients, and the same share of the careful
// ones, roaming, so that both kinds travel whatever the two shares are.
func Kinds(n int, careless, roam float64) []Kind {
	out := make([]Kind, n)
	var nth [2]int // clients so far of each kind: careful, careless
	for i := range out {
		k := Kind{Careless: client.IsCareless(i, careless)}
		c := 0
		if k.Careless {
			c = 1
		}
		k.Roaming = client.IsCareless(nth[c], roam)
		nth[c]++
		out[i] = k
	}
	return out
}
