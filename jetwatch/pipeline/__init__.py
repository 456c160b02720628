"""The pipeline after intake: batch, deliver (with in-doubt resolution), track, post-act, upkeep."""
