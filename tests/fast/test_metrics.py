"""imgsearch_helpers.evaluation.metrics against cases worked out by hand (fractions in the comments)."""
import numpy as np
import pytest

from imgsearch_helpers.evaluation.metrics import (
    INSTANCE,
    RECALL,
    average_precision,
    evaluate,
    hit_ratio,
    metric_keys,
    relevant_by_group,
    relevant_found,
    towhee_ap,
)


def scores(relevant, ranked, k):
    return hit_ratio(relevant, ranked, k), towhee_ap(relevant, ranked, k), average_precision(relevant, ranked, k)


def test_two_hits_among_misses():
    # relevant {1,2,3,4}; hits at ranks 1 and 3: precisions 1/1 and 2/3, sum 5/3
    hr, towhee, ap = scores({1, 2, 3, 4}, [1, 9, 2, 8, 7], k=10)
    assert hr == pytest.approx(2 / 4)  # 2 of 4 relevant found
    assert towhee == pytest.approx(5 / 6)  # (5/3) / 2 hits
    assert ap == pytest.approx(5 / 12)  # (5/3) / min(10, 4)


def test_one_hit_at_rank_1():
    hr, towhee, ap = scores({5, 6}, [5, 1, 2], k=10)
    assert hr == pytest.approx(1 / 2)
    assert towhee == 1.0  # (1/1) / 1 hit, whatever else is relevant
    assert ap == pytest.approx(1 / 2)  # (1/1) / min(10, 2)


def test_one_hit_at_rank_2():
    # precision at rank 2 is 1/2
    assert scores({3}, [8, 3], k=10) == pytest.approx((1.0, 1 / 2, 1 / 2))


def test_perfect_ranking():
    assert scores({1, 2, 3}, [1, 2, 3, 4], k=10) == pytest.approx((1.0, 1.0, 1.0))


def test_ap_divides_by_k_when_more_items_are_relevant_than_k():
    # 10 relevant, k=3, top 3 all relevant: precisions 1, 1, 1, sum 3
    hr, towhee, ap = scores(set(range(10)), [0, 1, 2, 3], k=3)
    assert hr == pytest.approx(3 / 10)
    assert towhee == 1.0  # 3 / 3 hits
    assert ap == 1.0  # 3 / min(3, 10)


def test_zero_hits():
    assert scores({1, 2}, [7, 8, 9], k=10) == (0.0, 0.0, 0.0)
    assert scores({1, 2}, [], k=10) == (0.0, 0.0, 0.0)


def test_ranked_list_shorter_than_k():
    # one hit at rank 1, only 2 results for k=10
    hr, towhee, ap = scores({1, 2, 3}, [3, 7], k=10)
    assert hr == pytest.approx(1 / 3)
    assert towhee == 1.0
    assert ap == pytest.approx(1 / 3)  # (1/1) / min(10, 3)


def test_minus_one_padding_counts_as_misses():
    # hit at rank 2 only: precision 1/2
    hr, towhee, ap = scores({2, 3}, [7, 2, -1, -1, -1], k=5)
    assert hr == pytest.approx(1 / 2)
    assert towhee == pytest.approx(1 / 2)
    assert ap == pytest.approx(1 / 4)  # (1/2) / min(5, 2)


def test_k_cuts_the_ranked_list():
    ranked = [9, 1, 2]
    # k=2: hit at rank 2 only (1/2)
    assert scores({1, 2}, ranked, k=2) == pytest.approx((1 / 2, 1 / 2, 1 / 4))
    # k=3: hits at ranks 2 and 3: 1/2 + 2/3 = 7/6; towhee 7/12, ap (7/6) / 2 = 7/12
    assert scores({1, 2}, ranked, k=3) == pytest.approx((1.0, 7 / 12, 7 / 12))
    # k=1: the only result kept is a miss
    assert scores({1, 2}, ranked, k=1) == (0.0, 0.0, 0.0)


def test_relevant_may_be_any_iterable():
    assert scores([1, 2, 2], (2, 5), k=10) == pytest.approx((1 / 2, 1.0, 1 / 2))


def test_empty_relevant_set_is_an_error():
    with pytest.raises(ValueError, match="relevant"):
        hit_ratio(set(), [1], 10)
    with pytest.raises(ValueError, match="relevant"):
        average_precision(set(), [1], 10)
    with pytest.raises(ValueError, match="relevant"):
        evaluate([set()], [[1]])


def test_evaluate_averages_over_queries_into_one_row():
    ground_truth = [{1, 2}, {3, 4}]
    results = [[1, 9, 2], [8, 3]]
    # query 1: hits at ranks 1, 3 -> sum 1 + 2/3 = 5/3; hr 1, towhee 5/6, ap 5/3 / 2 = 5/6
    # query 2: hit at rank 2 -> sum 1/2; hr 1/2, towhee 1/2, ap 1/2 / 2 = 1/4
    row = evaluate(ground_truth, results, model="tiny-net", engine="exact")
    assert set(row) == {"model", "engine", "queries", "k", "mhr@10", "towhee_map@10", "ap@10"}
    assert row["model"] == "tiny-net" and row["engine"] == "exact"
    assert row["queries"] == 2 and row["k"] == 10
    assert row["mhr@10"] == pytest.approx(3 / 4)  # (1 + 1/2) / 2
    assert row["towhee_map@10"] == pytest.approx(2 / 3)  # (5/6 + 1/2) / 2
    assert row["ap@10"] == pytest.approx(13 / 24)  # (5/6 + 1/4) / 2
    assert all(type(row[key]) is float for key in ("mhr@10", "towhee_map@10", "ap@10"))


def test_evaluate_names_columns_after_k():
    row = evaluate([{1, 2}], [[9, 1, 2]], k=2)
    assert row["k"] == 2
    assert row["mhr@2"] == pytest.approx(1 / 2)
    assert row["towhee_map@2"] == pytest.approx(1 / 2)
    assert row["ap@2"] == pytest.approx(1 / 4)
    assert "ap@10" not in row


def test_evaluate_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 ground-truth sets but 1 result lists"):
        evaluate([{1}, {2}], [[1]])


def test_evaluate_rejects_no_queries():
    with pytest.raises(ValueError, match="no queries"):
        evaluate([], [])


def test_relevant_found_counts_each_querys_relevant_results():
    truth = [{1, 2, 3}, {7}]
    assert relevant_found(truth, np.array([[1, 9, 3], [8, 9, 5]])).tolist() == [2, 0]
    assert relevant_found(truth, [[2, 2], [7]]).tolist() == [1, 1]  # a repeated id counts once


def test_instance_metrics_count_top1_hits_ap_and_the_ns_score():
    # query of group a (positions 0, 1): hits at ranks 2 and 3; of group b (2, 3): at ranks 1 and 2
    truth = relevant_by_group(["a", "a", "b", "b"], ["a", "b"])
    assert truth == [{0, 1}, {2, 3}]
    row = evaluate(truth, [[2, 0, 1, 3], [2, 3, 0, 1]], k=4, metrics=INSTANCE)
    assert list(row) == ["queries", "k", "top1", "hit@4", "ap@4", "mhr@4", "ns@4"]
    assert row["top1"] == 0.5  # only b's first result is of its group
    assert row["hit@4"] == 1.0 and row["mhr@4"] == 1.0
    assert row["ns@4"] == 2.0  # both group members in each top 4
    assert row["ap@4"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2)


def test_the_ns_score_stops_at_four_whatever_k():
    row = evaluate([{1, 2, 3, 4, 5}], [[9, 1, 2, 3, 4, 5]], k=10, metrics=("ns@4", "mhr@{k}"))
    assert row["ns@4"] == 3.0 and row["mhr@10"] == 1.0


def test_recall_is_the_share_of_the_exact_top_k_found():
    row = evaluate([[1, 2, 3, 4], [5, 6, 7, 8]], [[1, 2, 9, 9], [5, 9, 9, 9]], k=4, metrics=RECALL)
    assert row["recall@4"] == (0.5 + 0.25) / 2


def test_metric_keys_name_the_depth():
    assert metric_keys(INSTANCE, 10) == ["top1", "hit@10", "ap@10", "mhr@10", "ns@4"]


@pytest.mark.parametrize("key", ["mAP@10", "mhr10", "mhr@", "top2"])
def test_an_unknown_metric_key_names_the_known_ones(key):
    with pytest.raises(ValueError, match="unknown metric .* towhee_map"):
        evaluate([{1}], [[1]], metrics=(key,))


def test_a_query_whose_group_has_no_gallery_image_is_an_error():
    with pytest.raises(ValueError, match="relevant"):
        evaluate(relevant_by_group(["a"], ["b"]), [[0]], metrics=INSTANCE)
