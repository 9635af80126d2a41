"""Pydantic models of the lambda-ber classes the record writer fills, with lambda-ber's slot names.

Upstream classes (``Dataset``, ``Study``, ``Sample``, ``BeamlineInstrument``, ``ExperimentRun``,
``DataFile`` and the association lists) forbid unknown fields like lambda-ber does. The ``Bluesky*``
subclasses add the Bluesky slots of the project's LinkML extension (``sibyls_bluesky_extension.yaml``).
A user gets records whose field names are exactly lambda-ber's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML: set fields only."""
        return self.model_dump(exclude_none=True, mode="json")


class QuantityValue(_Model):
    numeric_value: float | None = None
    unit: str | None = None


def qv(value: float | None, unit: str) -> QuantityValue | None:
    """A ``QuantityValue`` or ``None`` when the value is absent (values are never invented)."""
    return None if value is None else QuantityValue(numeric_value=float(value), unit=unit)


class NamedThing(_Model):
    id: str
    title: str | None = None
    description: str | None = None


class Study(NamedThing):
    keywords: list[str] | None = None


class BufferComposition(_Model):
    description: str | None = None
    ph: QuantityValue | None = None
    components: list[str] | None = None
    additives: list[str] | None = None


class Sample(NamedThing):
    sample_code: str
    sample_type: str
    molecular_weight: QuantityValue | None = None
    concentration: QuantityValue | None = None
    buffer_composition: BufferComposition | None = None


class Instrument(NamedThing):
    instrument_code: str
    instrument_registry_id: str | None = None
    instrument_category: str | None = None
    facility_name: str | None = None
    facility_ror: str | None = None
    beamline_id: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    installation_date: str | None = None
    current_status: str | None = None


class SAXSInstrument(Instrument):
    q_range_min: QuantityValue | None = None
    q_range_max: QuantityValue | None = None
    detector_distance_min: QuantityValue | None = None
    detector_distance_max: QuantityValue | None = None
    sample_changer_capacity: QuantityValue | None = None
    temperature_control_range: str | None = None


class BeamlineInstrument(Instrument):
    techniques_supported: list[str]
    source_type: str | None = None
    energy_min: QuantityValue | None = None
    energy_max: QuantityValue | None = None
    q_range_min: QuantityValue | None = None
    q_range_max: QuantityValue | None = None
    sample_changer_capacity: QuantityValue | None = None
    mail_in_service: bool | None = None
    website: str | None = None
    daq_system: str | None = None
    control_system: str | None = None


class ExperimentalConditions(_Model):
    description: str | None = None
    temperature: QuantityValue | None = None
    beam_energy: QuantityValue | None = None
    exposure_time: QuantityValue | None = None


class DataCollectionStrategy(_Model):
    description: str | None = None
    collection_mode: str | None = None
    total_frames: QuantityValue | None = None
    frame_rate: QuantityValue | None = None
    wavelength_a: QuantityValue | None = None
    detector_distance_mm: QuantityValue | None = None
    energy: QuantityValue | None = None
    exposure_time: QuantityValue | None = None
    strategy_notes: str | None = None


class QualityMetrics(_Model):
    """The SAXS slots of lambda-ber's QualityMetrics the first look fills."""

    signal_to_noise: QuantityValue | None = None
    i_zero: QuantityValue | None = None
    rg: QuantityValue | None = None
    r_factor: QuantityValue | None = None


class ExperimentRun(NamedThing):
    experiment_code: str
    experiment_date: str | None = None
    operator_id: str | None = None
    technique: str
    experimental_conditions: ExperimentalConditions | None = None
    data_collection_strategy: DataCollectionStrategy | None = None
    raw_data_location: str | None = None
    processing_status: str | None = None
    daq_system: str | None = None
    detector: str | None = None
    autoloader_slot: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    quality_metrics: QualityMetrics | None = None


class DataFile(NamedThing):
    file_name: str
    file_path: str | None = None
    file_format: str
    file_size_bytes: QuantityValue | None = None
    checksum: str | None = None
    creation_date: str | None = None
    data_type: str | None = None
    related_entity: str | None = None
    file_role: str | None = None


class WorkflowRun(NamedThing):
    workflow_code: str
    workflow_type: str
    processing_level: QuantityValue | None = None
    software_name: str
    software_version: str | None = None
    additional_software: str | None = None
    processing_parameters: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class Image(NamedThing):
    file_name: str
    acquisition_date: str | None = None
    dimensions_x: QuantityValue | None = None
    dimensions_y: QuantityValue | None = None


class StudySampleAssociation(_Model):
    study_id: str
    sample_id: str
    role: str | None = None


class StudyExperimentAssociation(_Model):
    study_id: str
    experiment_id: str


class ExperimentSampleAssociation(_Model):
    experiment_id: str
    sample_id: str
    role: str | None = None


class ExperimentInstrumentAssociation(_Model):
    experiment_id: str
    instrument_id: str
    role: str | None = None


class StudyWorkflowAssociation(_Model):
    study_id: str
    workflow_id: str


class WorkflowExperimentAssociation(_Model):
    workflow_id: str
    experiment_id: str


class WorkflowOutputAssociation(_Model):
    workflow_id: str
    file_id: str
    output_type: str | None = None


# ---- project extension (sibyls_bluesky_extension.yaml) ---------------------------------------------


class BlueskyStudy(Study):
    """Study carrying the RunStart slots of the run (bluesky:RunStart.*)."""

    bluesky_uid: str | None = None
    plan_name: str | None = None
    plan_type: str | None = None
    scan_id: int | None = None
    time_start: float | None = None
    project_code: str | None = None


class BlueskyStream(_Model):
    """One Bluesky event stream of the run (from its EventDescriptor and Events)."""

    stream_name: str
    bluesky_descriptor_uid: str
    event_count: int
    seq_num: int | None = None
    event_time_first: float | None = None
    event_time_last: float | None = None


class SaxsResults(_Model):
    """The first look's numbers beyond lambda-ber's QualityMetrics (extension ``SaxsResults``)."""

    rg_sigma_a: float | None = None
    rg_autorg_a: float | None = None
    i_zero_sigma: float | None = None
    guinier_q_min: float | None = None
    guinier_q_max: float | None = None
    guinier_qrg_min: float | None = None
    guinier_qrg_max: float | None = None
    guinier_points: int | None = None
    guinier_quality: float | None = None
    rg_curvature_corrected_a: float | None = None
    rg_curvature_corrected_sigma_a: float | None = None
    pr_rg_a: float | None = None
    pr_rg_sigma_a: float | None = None
    pr_i_zero: float | None = None
    pr_i_zero_sigma: float | None = None
    dmax_a: float | None = None
    dmax_sigma_a: float | None = None
    pr_chi2_reduced: float | None = None
    pr_method: str | None = None
    porod_volume_a3: float | None = None
    molecular_weight_porod_kda: float | None = None
    molecular_weight_vc_kda: float | None = None
    molecular_weight_i0_kda: float | None = None
    mals_molar_mass_kda: float | None = None
    molecular_weight_kda: float | None = None
    molecular_weight_sigma_kda: float | None = None
    molecular_weight_spread_kda: float | None = None
    molecular_weight_methods: str | None = None
    svd_components: int | None = None
    efa_components: int | None = None
    efa_rg_a: list[float | None] | None = None
    efa_mals_molar_mass_kda: list[float | None] | None = None
    frames_total: int | None = None
    frames_kept: int | None = None
    buffer_run_uid: str | None = None
    flags: list[str] | None = None


class BlueskyExperimentRun(ExperimentRun):
    """ExperimentRun with the run's Bluesky streams, exit status and contract fields."""

    bluesky_uid: str | None = None
    sample_code: str | None = None
    sample_role: str | None = None
    plate_id: str | None = None
    well: str | None = None
    buffer_run_uid: str | None = None
    exit_status: str | None = None
    exit_reason: str | None = None
    time_stop: float | None = None
    bluesky_streams: list[BlueskyStream] | None = None
    saxs_results: SaxsResults | None = None


class BlueskyDataFile(DataFile):
    """DataFile from a Resource/StreamResource document."""

    bluesky_resource_uid: str | None = None
    bluesky_datum_ids: list[str] | None = None
    resource_path: str | None = None
    resource_root: str | None = None
    resource_spec: str | None = None


InstrumentAny = BeamlineInstrument | SAXSInstrument | Instrument


class Dataset(NamedThing):
    """The lambda-ber tree root (upstream slots only)."""

    keywords: list[str] | None = None
    studies: list[Study] | None = None
    instruments: list[InstrumentAny] | None = None
    samples: list[Sample] | None = None
    experiment_runs: list[ExperimentRun] | None = None
    data_files: list[DataFile] | None = None
    workflow_runs: list[WorkflowRun] | None = None
    images: list[Image] | None = None
    study_sample_associations: list[StudySampleAssociation] | None = None
    study_experiment_associations: list[StudyExperimentAssociation] | None = None
    experiment_sample_associations: list[ExperimentSampleAssociation] | None = None
    experiment_instrument_associations: list[ExperimentInstrumentAssociation] | None = None
    study_workflow_associations: list[StudyWorkflowAssociation] | None = None
    workflow_experiment_associations: list[WorkflowExperimentAssociation] | None = None
    workflow_output_associations: list[WorkflowOutputAssociation] | None = None


class BlueskyDataset(Dataset):
    """A per-run record: a Dataset whose Study/ExperimentRun/DataFile carry the Bluesky slots."""

    studies: list[BlueskyStudy] | None = None
    experiment_runs: list[BlueskyExperimentRun] | None = None
    data_files: list[BlueskyDataFile | DataFile] | None = None
