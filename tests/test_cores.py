"""Questions answered at once share the cores; one alone gets them all."""

import threading

import pytest

torch = pytest.importorskip("torch")

from qa.cores import CoreShare  # noqa: E402


@pytest.fixture
def four_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def test_one_user_gets_every_core_and_several_split_them(four_threads):
    cores = CoreShare()
    with cores.shared():
        assert torch.get_num_threads() == 4
        with cores.shared():  # a second question arrives
            assert torch.get_num_threads() == 2
            with cores.shared(), cores.shared(), cores.shared():
                assert torch.get_num_threads() == 1  # never less than one each
        cores.take_share()  # the others are done before this one reads
        assert torch.get_num_threads() == 4


def test_users_on_other_threads_count(four_threads):
    cores, entered, leave = CoreShare(), threading.Event(), threading.Event()

    def other_question():
        with cores.shared():
            entered.set()
            leave.wait(10)

    other = threading.Thread(target=other_question)
    other.start()
    entered.wait(10)
    with cores.shared():
        assert torch.get_num_threads() == 2
    leave.set()
    other.join()


def test_a_fixed_thread_count_is_kept(four_threads):
    cores = CoreShare(threads=3)
    with cores.shared(), cores.shared():
        assert torch.get_num_threads() == 3
