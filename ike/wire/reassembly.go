package wire

// Reassembler collects the decrypted fragments of one IKE message
// (RFC 7383 §2.6) within fixed bounds on fragment count and bytes. It
// holds one message at a time: the engine hands it only fragments that
// passed Open (so they are authentic) and whose Message ID is the one it
// expects. It is not safe for concurrent use; it belongs to one IKE SA.
type Reassembler struct {
	maxFragments int
	maxBytes     int

	active    bool
	messageID uint32
	total     uint16
	first     PayloadType
	parts     [][]byte // indexed by Fragment Number - 1; nil until received
	received  int
	bytes     int
}

// NewReassembler returns a Reassembler that refuses messages of more than
// maxFragments fragments or maxBytes bytes of inner payloads.
func NewReassembler(maxFragments, maxBytes int) *Reassembler {
	return &Reassembler{maxFragments: maxFragments, maxBytes: maxBytes}
}

// Reset drops whatever is being collected (a timeout, or the IKE SA went
// away).
func (r *Reassembler) Reset() {
	r.active = false
	r.messageID, r.total, r.first = 0, 0, PayloadNone
	r.parts = nil
	r.received, r.bytes = 0, 0
}

// start begins collecting a message of total fragments.
func (r *Reassembler) start(messageID uint32, total uint16) {
	r.Reset()
	r.active = true
	r.messageID = messageID
	r.total = total
	r.parts = make([][]byte, total)
}

// Add stores fragment f of the message with the given Message ID. When the
// last missing fragment arrives it returns the decoded inner payloads and
// done = true, and starts afresh. A fragment of another Message ID than the
// one being collected starts over with it. Dropped fragments return a
// FragmentError (RFC 7383 §2.6 rules):
//   - a number already held: ErrDuplicateFragment;
//   - a Total Fragments smaller than the current one: ErrStaleFragment,
//     while a larger one means the sender re-fragmented for a smaller
//     path MTU, so everything held is dropped and collection restarts;
//   - bounds exceeded: ErrTooManyFragments, ErrReassemblyTooLarge (the
//     latter also drops what was held).
//
// f.Data is copied; the caller may reuse it.
func (r *Reassembler) Add(messageID uint32, f Fragment) (inner []Payload, done bool, err error) {
	first, whole, done, err := r.AddPlain(messageID, f)
	if err != nil || !done {
		return nil, done, err
	}
	inner, err = DecodePayloads(first, whole)
	if err != nil {
		return nil, false, err
	}
	return inner, true, nil
}

// AddPlain is Add returning the reassembled inner payload chain undecoded, with the type of its
// first payload (RFC 9242 §3.3.2 authenticates IKE_INTERMEDIATE messages over these bytes).
func (r *Reassembler) AddPlain(messageID uint32, f Fragment) (first PayloadType, whole []byte, done bool, err error) {
	if checkFragmentNumbers(f.Number, f.Total) != nil {
		return PayloadNone, nil, false, ErrBadFragmentNumber
	}
	if int(f.Total) > r.maxFragments {
		return PayloadNone, nil, false, ErrTooManyFragments
	}
	switch {
	case !r.active || messageID != r.messageID || f.Total > r.total:
		r.start(messageID, f.Total)
	case f.Total < r.total:
		return PayloadNone, nil, false, ErrStaleFragment
	}
	i := int(f.Number) - 1
	if r.parts[i] != nil {
		return PayloadNone, nil, false, ErrDuplicateFragment
	}
	if len(f.Data) > r.maxBytes-r.bytes {
		r.Reset()
		return PayloadNone, nil, false, ErrReassemblyTooLarge
	}
	// A non-nil empty slice marks an empty fragment as received.
	r.parts[i] = append(make([]byte, 0, len(f.Data)), f.Data...)
	r.received++
	r.bytes += len(f.Data)
	if f.Number == 1 {
		r.first = f.First
	}
	if r.received < int(r.total) {
		return PayloadNone, nil, false, nil
	}
	whole = make([]byte, 0, r.bytes)
	for _, p := range r.parts {
		whole = append(whole, p...)
	}
	first = r.first
	r.Reset()
	return first, whole, true, nil
}
