# How many bytes the full-table Viterbi decoder (csrc/_viterbi.pyx) keeps per frame,
# and how many it may keep before checkpointed decoding takes over: the rule and the
# threshold both the decoder's fast entry and the automatic switch to checkpointed
# decoding (csrc/_checkpoint.pyx ``full_table_bytes``, hmmfast/_decoders.py) use, so
# they cannot disagree.
#
# Design note
# -----------
# Backpointers take the smallest unsigned type that holds N (``backptr_bytes``: uint8 up
# to 256 states, uint16 up to 65,536, int32 beyond), N per frame; the register-resident
# decoder of hmm_viterbi_regs.h (N <= HMM_VR_MAX_STATES) stores a row of
# ``hmm_viterbi_regs_row(N)`` bytes per frame instead.

cdef extern from "hmm_viterbi_regs.h" nogil:
    Py_ssize_t hmm_viterbi_regs_row(Py_ssize_t n)
    int HMM_VR_MAX_STATES

cdef enum:
    # Above this many bytes of full-table backpointers (the longest sequence's
    # T x table_bytes_per_frame(N), per thread) the decoders switch to checkpointed
    # decoding by themselves: same path, O(sqrt(T) N) memory, about twice the time.
    # 256 MiB: T = 4.2 million frames at N = 64. The one definition: the decode fast
    # entry (csrc/_viterbi.pyx) reads it here, Python (the dispatcher,
    # hmmfast/_decoders.py) as hmmfast._checkpoint.AUTO_CHECKPOINT_BYTES.
    AUTO_CHECKPOINT_BYTES = 268435456


cdef inline Py_ssize_t backptr_bytes(Py_ssize_t n_states) noexcept nogil:
    """Bytes per backpointer: the smallest unsigned type that holds N."""
    if n_states <= 256:
        return 1
    if n_states <= 65536:
        return 2
    return 4


cdef inline Py_ssize_t table_bytes_per_frame(Py_ssize_t n_states) noexcept nogil:
    """Backpointer bytes per frame of the full-table decoder, as it allocates them."""
    if n_states <= HMM_VR_MAX_STATES:
        return hmm_viterbi_regs_row(n_states)
    return n_states * backptr_bytes(n_states)
