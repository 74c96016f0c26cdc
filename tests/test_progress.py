"""The progress lines of a running study (study.progress), without Ray: counts, time left, names, the best."""
from study.progress import TrialProgress, duration, ended_line, status_lines, time_left


def test_time_left_extrapolates_the_pace_of_finished_and_partly_trained_trials():
    # 100 s for one finished trial and half of another: 1.5 of 4 trials' work; 2.5 more take 100 / 1.5 * 2.5 s
    running = [TrialProgress("dcgan g16 d8 k1 s2", 2500, {"step": 1250, "fid": 45.21}),
               TrialProgress("mlp g32 d8 k1 s0", 10_000, {})]
    finished = [TrialProgress("dcgan g8 d16 k1 s1", 2500, {"step": 2500, "fid": 33.0, "final/fid": 31.14})]
    lines = status_lines(100.0, 1, 4, running, 2, finished, "fid", "min")
    assert lines == ["[0:01:40] 1/4 trials done, 2 running, 2 waiting; about 3 min left",  # 166.7 s
                     "  running: dcgan g16 d8 k1 s2 at step 1250/2500, fid 45.21",
                     "  running: mlp g32 d8 k1 s0 starting",
                     "  best so far: dcgan g8 d16 k1 s1, final/fid 31.14"]


def test_the_best_so_far_follows_the_mode_and_nothing_is_estimated_before_a_result():
    trials = [TrialProgress("a", 10, {"step": 5, "d_gap": 0.2}), TrialProgress("b", 10, {"step": 5, "d_gap": 0.4})]
    assert status_lines(9.0, 0, 2, trials, 0, [], "d_gap", "max")[-1] == "  best so far: b, d_gap 0.4"
    assert status_lines(9.0, 0, 2, [TrialProgress("a", 10, {})], 1, [], "fid", "min") == \
        ["[0:00:09] 0/2 trials done, 1 running, 1 waiting; time left unknown until the first result",
         "  running: a starting"]


def test_durations_and_the_line_of_an_ended_trial():
    assert (duration(3725), time_left(20), time_left(3900)) == ("1:02:05", "20 s", "1 h 05 min")
    trial = TrialProgress("mlp g32 d32 k1 s0", 40, {"step": 40, "fid": 859.7, "final/fid": 855.31})
    assert ended_line(51.2, trial, "completed", 1, 2, "fid") == \
        "[0:00:51] ended: mlp g32 d32 k1 s0, completed at step 40, final/fid 855.3 (1/2 done)"
