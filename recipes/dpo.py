"""DPO on C²-SYN with TRL: the training half of Course-Correction (method section 4).

Shaped like TRL's ``trl/scripts/dpo.py``: one ``TrlParser`` over :class:`ScriptArguments`,
``DPOConfig`` and ``ModelConfig``; TRL's ``DPOTrainer`` as is; LoRA and QLoRA through
``ModelConfig`` (``use_peft``, ``lora_*``, ``load_in_4bit``) and peft. Bad input (unknown
recipe key, missing dataset, no prompt/chosen/rejected columns, a chat model without a chat
template, an output folder that already holds a model) stops with one ``error:`` line and
exit code 2 BEFORE any model weights load (checks: ``cc_train.inputs``; data: ``synth.dataset``).

Launch it with ``c2-train`` (``cc_train.launch``): the same checks run there before
``accelerate launch`` spawns anything, so bad input keeps its one line and exit code 2, which
a plain ``accelerate launch`` turns into exit 1 and a traceback. Usage: a recipe YAML, given
first (positional) or with ``--config`` (TRL's own form); any recipe value can be overridden
on the command line::

    # CPU smoke run on the embedded SmolLM2 (minutes; dataset = a folder written by `c2-syn`)
    c2-train --config_file recipes/accelerate_configs/cpu.yaml \\
        recipes/smollm2-135m-instruct/dpo/config_cpu.yaml --dataset_name runs/c2syn-smoke

    # one GPU, LoRA (Llama-2-7B-Chat): one process, the same as `python recipes/dpo.py ...`
    c2-train recipes/llama2-7b-chat/dpo/config_lora.yaml

    # 8 GPUs, full fine-tuning with DeepSpeed ZeRO-3 (pip install -e '.[deepspeed]')
    c2-train --config_file recipes/accelerate_configs/zero3.yaml \\
        --config recipes/qwen2-7b-instruct/dpo/config_full.yaml --dataset_name ./c2-syn

    # overrides: a two-step check that holds out 10% of the requests, logged to TensorBoard
    python recipes/dpo.py recipes/smollm2-135m-instruct/dpo/config_cpu.yaml \\
        --dataset_name runs/c2syn-smoke --max_steps 2 --test_size 0.1 --report_to tensorboard \\
        --output_dir /tmp/dpo-check

The model loads on this process's one device (``cc_train.placement``: never spread over every
visible GPU by ``device_map="auto"``; none when DDP/ZeRO-3/FSDP place it). The shared-response
trainer is imported only with ``group_by_request: true``; its tested library versions are
checked first (``cc_train.compat``). LoRA/QLoRA runs stop with one line when the adapter has not
moved after 10 steps; QLoRA keeps its adapter in fp32 (``cc_train.adapters``).

``model_name_or_path: embedded`` means the embedded SmolLM2-135M-Instruct folder
(``python -m cc_tasks.embedded``), whose path differs per machine. At the end the script
writes a model card (base model and data by Hub id or fingerprint, the recipe, the training
and held-out metrics, the C²-EVAL command) and prints the command that scores the result
with C²-EVAL, fast for this hardware.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any

from cc_train.cpu_threads import set_cpu_threads
from cc_train.inputs import ScriptArguments, check_inputs, make_parser, parse_args
from cc_train.model_card import DataRef, TrainingCard
from cc_train.recipe import resolve_report_to


def main(
    script_args: ScriptArguments, training_args: Any, model_args: Any, recipe: str | None = None
) -> str:
    """Check every input, then train with DPOTrainer, save, write the card, push if asked."""
    import torch
    from trl import DPOTrainer, get_peft_config, get_quantization_config

    from cc_train.adapters import AdapterMovementCallback, keep_adapters_fp32
    from cc_train.placement import device_map

    # 1. everything that can be wrong with the inputs, cheapest first, before the model loads
    checked = check_inputs(script_args, training_args, model_args)  # also what c2-train runs
    base, train, test, tokenizer = checked.base, checked.train, checked.test, checked.tokenizer
    whole = script_args.group_by_request
    if _is_local_main():
        for note in checked.notes:
            print(note, flush=True)
    if training_args.device.type == "cpu":  # the cores this process gets, not all of them
        line = set_cpu_threads()
        if _is_local_main():
            print(line, flush=True)
    peft_config = get_peft_config(model_args)
    training_args.report_to, chosen = resolve_report_to(training_args.report_to)
    if chosen and _is_local_main():
        print(chosen)

    # 2. the model: loaded by DPOTrainer from the name, as in trl/scripts/dpo.py
    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
        device_map=device_map(training_args),  # one device per process, never "auto"
    )
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs
    if whole:  # imported only here: it overrides private TRL internals (cc_train.compat)
        from cc_train import shared_dpo

        trainer_class: Any = partial(
            shared_dpo.SharedResponseDPOTrainer,
            correction_sft_weight=script_args.correction_sft_weight,
        )
    else:
        trainer_class = DPOTrainer
    trainer = trainer_class(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=peft_config,
    )
    if peft_config is not None:  # bf16 adapters can silently stop moving: fail fast instead
        if (model_args.load_in_4bit or model_args.load_in_8bit) and script_args.adapter_fp32:
            keep_adapters_fp32(trainer.model)  # TRL cast them to bf16 (cc_train.adapters)
        trainer.add_callback(AdapterMovementCallback())
    card = TrainingCard.for_run(
        base,
        DataRef.of(script_args.dataset_name, script_args.dataset_revision),
        training_args,
        recipe=recipe,
        adapter=peft_config is not None,
        on_cpu=training_args.use_cpu or not torch.cuda.is_available(),
    )
    if script_args.correction_sft_weight:  # changes what is optimised: the card must say it
        card.settings["correction_sft_weight"] = script_args.correction_sft_weight
    trainer.create_model_card = card.hook(trainer)  # ours at checkpoints and pushes, not TRL's
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    # 3. save model or adapter + tokenizer, then our card over peft's template; push if asked
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        card.write(training_args.output_dir, trainer.state.log_history)
    trainer.accelerator.print(
        f"saved {'adapter' if peft_config else 'model'} + tokenizer + model card "
        f"to {training_args.output_dir}"
    )
    if training_args.push_to_hub:
        trainer.push_to_hub()  # TRL/transformers' own push; the card comes from our hook
        trainer.accelerator.print(f"pushed to https://huggingface.co/{trainer.hub_model_id}")
    trainer.accelerator.print(
        '\nScore it with C²-EVAL (without the Hub add --metadata \'{"data": "<PKU-SafeRLHF '
        "v0 file>\"}' to lm_eval, --data <file> to c2-eval):\n  " + "\n  ".join(card.commands)
    )
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish trackers, destroy process group
        trainer.end()
    return training_args.output_dir


def cli(argv: list[str] | None = None) -> int:
    """Parse, run, and turn every input problem into one ``error:`` line (exit code 2)."""
    from cc_tasks.errors import CCError, exit_code, message

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        script_args, training_args, model_args, recipe = parse_args(argv)
        main(script_args, training_args, model_args, recipe=recipe)
    except (CCError, OSError) as err:  # exit codes: cc_tasks.errors (2 input, 1 failed run)
        if _is_local_main():  # one line, from the main process only
            print(f"error: {message(err)}", file=sys.stderr)
        return exit_code(err)
    return 0


def _is_local_main() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0"


__all__ = ["ScriptArguments", "cli", "main", "make_parser"]  # make_parser: TRL's script shape


if __name__ == "__main__":
    raise SystemExit(cli())
