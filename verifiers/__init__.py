"""Verifiers: each scores a tier's answer with a confidence in [0, 1] and says why.

Importing this package registers every verifier type with `cascade.registry`, so a config's
`verifier: {type: ...}` can name them: logprob, self_consistency, self_verify, format,
schema, agreement, ensemble, scorer, vote (an ensemble tier's own vote share). The stopping rules
for sampling live in `verifiers.stopping`.
"""

from cascade.io.answers import normalise
from verifiers.agreement import AgreementConfig, AgreementVerifier
from verifiers.ensemble import EnsembleConfig, EnsembleVerifier, Member, MemberConfig, VotedContext, with_answer
from verifiers.format import FormatConfig, FormatVerifier
from verifiers.logprob import LogprobConfig, LogprobVerifier, aggregate_logprobs
from verifiers.schema import SchemaConfig, SchemaVerifier
from verifiers.scorer import ScorerConfig, ScorerVerifier
from verifiers.self_consistency import SelfConsistencyConfig, SelfConsistencyVerifier, majority
from verifiers.self_verify import DEFAULT_PROMPT, SelfVerifyConfig, SelfVerifyVerifier
from verifiers.stopping import (
    StoppingConfig,
    StopRule,
    beta_top_probability,
    dirichlet_top_probability,
    stop_after_samples,
    stop_all,
    stop_any,
    stop_base,
    stop_never,
    stop_when_beta,
    stop_when_dirichlet,
    stop_when_window,
)
from verifiers.vote import VoteConfig, VoteVerifier

__all__ = [
    "DEFAULT_PROMPT",
    "AgreementConfig",
    "AgreementVerifier",
    "EnsembleConfig",
    "EnsembleVerifier",
    "FormatConfig",
    "FormatVerifier",
    "LogprobConfig",
    "LogprobVerifier",
    "Member",
    "MemberConfig",
    "SchemaConfig",
    "SchemaVerifier",
    "ScorerConfig",
    "ScorerVerifier",
    "SelfConsistencyConfig",
    "SelfConsistencyVerifier",
    "SelfVerifyConfig",
    "SelfVerifyVerifier",
    "StopRule",
    "StoppingConfig",
    "VoteConfig",
    "VoteVerifier",
    "VotedContext",
    "aggregate_logprobs",
    "beta_top_probability",
    "dirichlet_top_probability",
    "majority",
    "normalise",
    "stop_after_samples",
    "stop_all",
    "stop_any",
    "stop_base",
    "stop_never",
    "stop_when_beta",
    "stop_when_dirichlet",
    "stop_when_window",
    "with_answer",
]
