-- The store's sequencer pass.
SELECT * FROM p.sequence_all(1000, 'x');
