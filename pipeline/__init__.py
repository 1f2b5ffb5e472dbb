"""The inspection line: sources, wire format, transport, batcher, worker, verdicts, recorder, supervisor."""
