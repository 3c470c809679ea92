package pipeline

import "time"

// SetPruneInterval makes p's sink runners prune every d instead of every 30s. Call
// it before Start.
func SetPruneInterval(p *Pipeline, d time.Duration) { p.pruneEvery = d }
