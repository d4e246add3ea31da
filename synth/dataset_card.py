"""The C²-SYN dataset card: README.md text and its YAML header for the Hugging Face Hub.

Kept apart from :mod:`synth.hub` (which writes the folder and uploads it) because the card is
prose about the data (how it was made, sizes, columns, license, citation) that changes for
other reasons than the file layout or the upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cc_tasks.pku import HUB_ID as SOURCE_HUB_ID
from cc_tasks.prefill import OPENERS

from .dataset import loading_snippet, split_pattern
from .pairs import SCHEMA
from .truncate import PUNCTUATION, TRIGGERS

PRETTY_NAME = "C²-SYN: synthetic course-correction preferences"
PAPER = "https://arxiv.org/abs/2407.16637"
CITATION = """@inproceedings{xu2024course,
  title     = {Course-Correction: Safety Alignment Using Synthetic Preferences},
  author    = {Xu, Rongwu and Cai, Yishuo and Zhou, Zhenhong and Gu, Renjie and Weng, Haiqin and Liu, Yan and Zhang, Tianwei and Xu, Wei and Qiu, Han},
  booktitle = {Proceedings of the 2024 Conference on Empirical Methods in Natural Language Processing: Industry Track},
  year      = {2024}
}"""


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` label for ``n`` rows."""
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < limit:
            return label
    return "10M<n<100M"


def card_metadata(
    split_files: Mapping[str, list[str]],
    split_rows: Mapping[str, int],
    split_bytes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The YAML header: license, task, tags, size, the source dataset, the ``configs`` that map
    files to splits and ``dataset_info`` (features from :data:`synth.pairs.SCHEMA`, split sizes),
    written by datasets' and huggingface_hub's own card classes."""
    from datasets import Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfo, DatasetInfosDict
    from huggingface_hub import DatasetCardData

    splits = [split for split, files in split_files.items() if files]
    data = DatasetCardData(
        license="cc-by-nc-4.0",
        language=["en"],
        pretty_name=PRETTY_NAME,
        task_categories=["text-generation"],
        tags=["dpo", "preference", "safety", "course-correction", "synthetic", "trl"],
        size_categories=[size_category(sum(split_rows.get(s, 0) for s in splits))],
        source_datasets=[SOURCE_HUB_ID],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": split_pattern(s)} for s in splits],
            }
        ],
    )
    info = DatasetInfo(
        features=Features.from_arrow_schema(SCHEMA),
        splits=SplitDict(
            {
                s: SplitInfo(
                    s, num_bytes=(split_bytes or {}).get(s, 0), num_examples=split_rows.get(s, 0)
                )
                for s in splits
            }
        ),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data.to_dict()


def _source_label(source: str) -> str:
    """A local file shows by name only (no local directory layout in a public card)."""
    return Path(source).name if Path(source).exists() else source


def _fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def render_card(
    manifest: Mapping[str, Any],
    stats: Mapping[str, Any],
    split_files: Mapping[str, list[str]],
    repo_id: str | None = None,
    split_bytes: Mapping[str, int] | None = None,
) -> str:
    """README.md text: YAML header, content warning, how it was made, schema, citation."""
    pairs = stats["pairs_by_split"]
    meta = card_metadata(split_files, pairs, split_bytes)
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    synth = manifest["synthesizer"]
    sel = manifest["selection"]
    gate = manifest.get("gate")
    gstats = stats.get("gate")
    dropped = stats["requests_dropped_invalid"]
    punct = " ".join(sorted(PUNCTUATION))
    lines = [
        "---",
        header.rstrip(),
        "---",
        "",
        f"# {PRETTY_NAME}",
        "",
        "> **Content warning.** This dataset contains deliberately harmful text (requests and responses "
        "from PKU-SafeRLHF about crime, violence, abuse and similar topics). It exists to train models to "
        "stop and correct themselves; do not use it for anything else.",
        "",
        "C²-SYN is the synthetic preference data of *Course-Correction: Safety Alignment Using Synthetic "
        f"Preferences* (Xu et al., EMNLP 2024 Industry Track, [arXiv 2407.16637]({PAPER})). Each request "
        "gets six responses ranked by how early they course-correct, and every better/worse pair of them "
        "is one preference: 15 pairs per request.",
        "",
        "```python",
        *loading_snippet(repo_id, [s for s, files in split_files.items() if files]),
        "```",
        "",
        (
            "A local copy of this folder loads with the files named explicitly (as above) or with "
            "`synth.dataset.load_c2syn(folder)` from the course-correction project: "
            '`load_dataset("path/to/folder")` would go through the `configs` block, which '
            "`datasets` caches under the folder's name only, so another folder of the same name "
            'could load its rows instead. Once pushed to the Hub, `load_dataset("ORG/NAME")` '
            "loads it by its repo id (`c2-syn card --repo-id ORG/NAME` writes that snippet here)."
            if not repo_id
            else "A local copy of this folder loads with `synth.dataset.load_c2syn(folder)` from "
            'the course-correction project, or `load_dataset("parquet", data_files=...)` with '
            "its `data/<split>-*.parquet` files (not `load_dataset(folder)`, which `datasets` "
            "caches under the folder's name only)."
        ),
        "",
        "## Size",
        "",
        "| split | requests | pairs |",
        "| --- | ---: | ---: |",
        *(
            f"| {split} | {stats['requests_by_split'][split]:,} | {pairs[split]:,} |"
            for split in pairs
            if split_files.get(split)
        ),
        "",
        f"- requests selected from the source: {stats['requests_selected']:,}",
        f"- skipped, fewer than 4 punctuation marks: {stats['requests_skipped_few_punctuation']:,}",
        f"- dropped, invalid responses (empty or identical): {sum(dropped.values()):,}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in dropped.items())})" if dropped else ""),
        f"- dropped by the quality gate: {stats['requests_dropped_by_gate']:,}; "
        f'kept but flagged (`gate = "failed"`): {stats["requests_flagged_by_gate"]:,}',
        f"- kept requests: {stats['requests_kept']:,}; responses: {stats['responses']:,}; "
        f"generated tokens: {stats['generated_tokens']:,}",
        "",
        "## How it was made",
        "",
        f"1. **Source**: `{_source_label(manifest['source'])}` (PKU-SafeRLHF, original v0 schema; the "
        f"paper uses its train split; SHA-256 of the selected rows "
        f"`{manifest['source_fingerprint'][:16]}…`). Selection, in "
        f"order: the prompt contains one of {', '.join(sel['keywords'])} (substring) and one of its "
        f"responses is unsafe with more than {sel['min_words']} whitespace-separated words "
        f"(response_0 checked first); the first {sel['max_requests']:,} such rows.",
        f"2. **Prefixes**: punctuation characters `{punct}` (an ellipsis counts as three periods) are "
        "counted in the harmful response y (t of them); a step s is drawn uniformly from the integers "
        "[t//4 − 1, t//4]; prefix p_i (i = 1..4) is y up to and including its (i·s)-th punctuation "
        "character. Edge cases: a drawn step below 1 is clamped to 1; a response with fewer than 4 "
        "punctuation marks is skipped (four distinct prefixes cannot exist); with s ≥ 1 the four "
        "prefixes are always distinct and growing.",
        (
            f"3. **Continuations**: for each p_i the assistant message starts with a random opener (15, "
            f'from "{OPENERS[0]}" on) + " " + p_i'
            if manifest.get("openers", "random") == "random"
            else "3. **Continuations**: for each p_i the assistant message is one opener per request "
            "(the same for r1..r4 and r5; `--openers shared`, a deviation from the reference, which "
            "draws one per response and none for r5: then the ranked responses share each prefix "
            'and a pair differs only where the correction starts) + " " + p_i'
            if manifest.get("openers") == "shared"
            else "3. **Continuations**: for each p_i the assistant message is p_i, **with no opener** "
            "(`--openers none`, a deviation from the reference)"
        )
        + f' + " " + a random corrective trigger (15, e.g. '
        f'"{TRIGGERS[0]}", "{TRIGGERS[3]}"), and the synthesiser continues **that same assistant '
        "turn** (no end-of-turn token, no new header) for at most the new-token limit below. The "
        "stored response is the whole assistant text.",
        "4. **r0** is the synthesiser's own reply to the plain request; **r5** is y itself"
        + (" after the request's opener." if manifest.get("openers") == "shared" else "."),
        "5. **Ranking**: r0 > r1 > r2 > r3 > r4 > r5; all 15 ordered pairs (chosen better, rejected "
        "worse).",
        f"6. **Randomness**: every choice (step, openers, triggers, split) comes from SHA-256 of the "
        f"row's content and the seed ({'none' if manifest.get('seed') is None else manifest['seed']}); "
        "decoding is deterministic unless sampling was chosen.",
        "",
        "| synthesis parameter | value |",
        "| --- | --- |",
        f"| synthesiser | `{synth.get('name') or synth['model']}` |",
        f"| backend | `{synth['backend']}` |",
        f"| decoding | `{synth['decoding']}` |",
        f"| system prompt | {('`' + synth['system_prompt'] + '`') if synth.get('system_prompt') else 'none (as in the reference)'} |",
        f"| held-out split | {'by request text, ' + str(stats['test_size']) if stats['test_size'] else 'none'} |",
        f"| software | {', '.join(f'{k} {v}' for k, v in (manifest.get('software') or {}).items()) or 'n/a'} |",
        f"| quality gate | {('judge `' + str(gate.get('name', gate.get('kind'))) + '`, action `' + stats['gate_action'] + '`') if gate else 'off'} |",
        "",
        "The paper's synthesiser was Llama-2-7B-Chat (4-bit) with diverse beam search (2 beams in 2 "
        "groups, diversity penalty 0.5, no sampling, 128 new tokens).",
    ]
    if synth["decoding"].startswith("diverse-beam") and synth["backend"] == "hf":
        lines += [
            "Diverse beam search ran in the course-correction project's own implementation of "
            "transformers 4.x group beam search (transformers 5 moved that mode to a Hub "
            "`custom_generate` repository that needs network access and remote code).",
        ]
    lines += [
        "",
        "<details><summary>The 15 openers and 15 triggers</summary>",
        "",
        "Openers: " + " | ".join(OPENERS),
        "",
        "Triggers: " + " | ".join(TRIGGERS),
        "",
        "</details>",
    ]
    if gstats:
        rates = ", ".join(f"{k}: {_fmt_rate(v)}" for k, v in gstats["correction_rate"].items())
        lines += [
            "",
            "### Quality gate",
            "",
            "Beyond the paper: the *chosen* side was judged with the C²-EVAL judge question. r0 must "
            "refuse (judged with an empty prefill, so a refusal from the first word counts as a "
            "correction); r1..r4 must course-correct after the trigger.",
            "",
            f"- judged requests: {gstats['judged_requests']:,}",
            f"- r0 refusal rate: {_fmt_rate(gstats['r0_refusal_rate'])}",
            f"- correction rate after the trigger: {rates}",
            f"- requests passing all five: {_fmt_rate(gstats['pass_rate'])}",
            f"- invalid or error verdicts: {gstats['invalid_or_error_verdicts']}",
        ]
    lines += [
        "",
        "## Columns",
        "",
        "| column | type | meaning |",
        "| --- | --- | --- |",
        "| `prompt` | list of messages | `[{role: user, content: request}]` |",
        "| `chosen` | list of messages | `[{role: assistant, content: r_a}]`, the better response |",
        "| `rejected` | list of messages | `[{role: assistant, content: r_b}]`, the worse response |",
        "| `request_id` | string | `<source row, 6 digits>-<8 hex of the content hash>`; 15 rows share it |",
        "| `source_row` | int | 1-based row of the request in the source |",
        "| `chosen_rank`, `rejected_rank` | int | 0..5, 0 best (r0), `chosen_rank < rejected_rank` |",
        "| `prefix_lengths` | list of 4 ints | characters of y in p1..p4 |",
        "| `opener`, `trigger` | lists of 4 strings | opener and trigger of r1..r4 (index i−1 for r_i) |",
        "| `synthesizer` | string | the model that wrote r0..r4 |",
        "| `decoding` | string | its decoding |",
        "| `gate` | string | `unchecked`, `passed` or `failed` (quality gate) |",
        "",
        "The format is TRL's conversational preference format: `trl.DPOTrainer` takes the train split "
        "as it is.",
        "",
        "## License",
        "",
        "CC BY-NC 4.0, inherited from PKU-SafeRLHF (PKU-Alignment; Dai et al., *Safe RLHF*, "
        "ICLR 2024). Non-commercial use only.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)
