"""[WU] the behaviour shift of instruction tuning: attribution, FFN concepts, attention-head word pairs."""
