"""preference_candidate: the DPO adapter evaluated, exported and published as the A/B candidate."""

import dagster as dg

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.defs.export.resources import LlamaCppToolchainResource
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.feedback.outputs import PreferenceAdapter


# After adapter_manifest: the candidate is compared with the SFT version it was trained from, which must be
# published (and current, if its gate passed) first.
@dg.asset(kinds={"gguf", "json"}, deps=["adapter_manifest"], code_version="1")
def preference_candidate(
    forge: ForgeSettingsResource,
    llama_cpp_toolchain: LlamaCppToolchainResource,
    preference_adapter: PreferenceAdapter,
    dataset_version: DatasetVersion,
) -> dg.MaterializeResult:
    """The DPO adapter through the SFT path (base-vs-tuned evaluation and gate, GGUF export, manifest
    version), named the manifest's A/B candidate with feedback.candidate_traffic_share of chat traffic.
    A no-op while preference_adapter has not trained; a DPO run already in the manifest is not published again
    (the same files for the same dataset version are the same version, `already_published`)."""
    from forge_pipeline.feedback.publish import publish_preference_candidate

    settings = forge.get()
    result = publish_preference_candidate(
        settings, preference_adapter, dataset_version, llama_cpp_toolchain.get(settings.export)
    )
    metadata: dict = {"published": result.published}
    if result.published:
        metadata.update(
            version=result.version,
            already_published=result.already_published,
            current=str(result.current),
            gate=result.gate,
            candidate=dg.MetadataValue.json(result.candidate or {}),
            tuned_loss=result.tuned_loss,
            base_loss=result.base_loss,
            manifest_path=dg.MetadataValue.path(str(result.manifest_path)),
        )
    else:
        metadata["skipped_because"] = result.reason
    return dg.MaterializeResult(value=result, metadata=metadata)
