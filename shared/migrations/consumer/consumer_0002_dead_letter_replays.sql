-- The dead letters `python -m services.replay_dead_letters` has sent again, so that a second run sends none of
-- them again (that tool created it itself before).

CREATE TABLE IF NOT EXISTS dead_letter_replays (
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
