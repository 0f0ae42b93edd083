"""`edgetwin replay`: sampled sessions of an emulated run, run again on attached devices,
and what they say of the twin: the sessions and their sampling, the journal, the
decisions derived again, the cross-check and its verdict, the report, recalibration."""
