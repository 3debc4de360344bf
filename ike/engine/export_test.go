package engine

// TimerEntries is the number of items in the engine's deadline heap (tests of its bound).
func (e *Engine) TimerEntries() int { return e.sched.size() }
