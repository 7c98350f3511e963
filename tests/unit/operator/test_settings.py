import pytest

from tailor_contract.cost import REFERENCE
from tailor_operator.core.planners import planner_named
from tailor_operator.core.search import AutoMLPlanner
from tailor_operator.settings import SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.calibration == ("tailor-system", "tailor-calibration")
    assert settings.namespaces == ()
    assert settings.policy.train_command[:2] == ("tailor-train", "run")
    assert settings.policy.max_attempts == 5


def test_every_variable_is_read() -> None:
    settings = load_settings(
        {
            "TAILOR_TRAINER_IMAGE": "r/t:1",
            "TAILOR_TRAIN_COMMAND": "python -m tailor_trainer run --config /etc/tailor/trial.json",
            "TAILOR_MAX_ATTEMPTS": "2",
            "TAILOR_BACKOFF_BASE_SECONDS": "0.5",
            "TAILOR_CALIBRATION_CONFIGMAP": "none",
            "TAILOR_NAMESPACES": "team-a, team-b",
            "TAILOR_WORKERS": "3",
        }
    )
    assert settings.policy.trainer_image == "r/t:1"
    assert settings.policy.train_command[:3] == ("python", "-m", "tailor_trainer")
    assert settings.policy.max_attempts == 2
    assert settings.policy.backoff_base_seconds == 0.5
    assert settings.calibration is None
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.workers == 3


def test_the_cost_priors_default_to_the_reference_gpu_and_can_be_set() -> None:
    assert load_settings({}).policy.cost == REFERENCE
    settings = load_settings(
        {
            "TAILOR_COST_FIXED_SECONDS": "6",
            "TAILOR_COST_IMAGES_PER_SECOND": "8.5",
            "TAILOR_COST_FLOOR_SECONDS_PER_IMAGE": "0.0008",
            "TAILOR_COST_DETECTION_OVERHEAD": "1.0",
        }
    )
    cost = settings.policy.cost
    assert (cost.fixed_seconds, cost.reference_images_per_second) == (6.0, 8.5)
    assert cost.floor_seconds_per_image == 0.0008
    assert cost.detection_overhead == 1.0
    # What is not a setting keeps the reference value.
    assert cost.multi_gpu_overhead == REFERENCE.multi_gpu_overhead
    # The planner the reconciler builds prices with them.
    planner = planner_named(settings.planner, cost)
    assert isinstance(planner, AutoMLPlanner)
    assert planner.cost == cost


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TAILOR_MAX_ATTEMPTS", "0", "must be a positive integer"),
        ("TAILOR_MAX_ATTEMPTS", "many", "invalid literal"),
        ("TAILOR_BACKOFF_BASE_SECONDS", "-1", "not negative"),
        ("TAILOR_COST_FIXED_SECONDS", "nan", "finite number"),
        ("TAILOR_COST_IMAGES_PER_SECOND", "0", "finite positive number"),
        ("TAILOR_COST_FLOOR_SECONDS_PER_IMAGE", "fast", "could not convert"),
        ("TAILOR_COST_DETECTION_OVERHEAD", "0", "finite positive number"),
        ("TAILOR_CALIBRATION_CONFIGMAP", "just-a-name", "NAMESPACE/NAME"),
        ("TAILOR_METRICS_PORT", "70000", "port number"),
        ("TAILOR_TRAIN_COMMAND", "  '' ", "must name a program"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=name) as error:
        load_settings({name: value})
    assert words in str(error.value)
