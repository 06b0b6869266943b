"""Test helpers: a Pipeline on the real backends, and the stateless per-frame analysis with its settings."""
from __future__ import annotations

from fer_ros.backends import create_face_detector, create_pipeline
from fer_ros.pipeline import FrameAnalysis, Pipeline, PipelineConfig, analyze_frame


def build(config: PipelineConfig, backend=None) -> Pipeline:
    """A Pipeline on ``backend``, or on the backend ``config`` names."""
    return create_pipeline(config, backend)


def stateless(pipeline: Pipeline, frame) -> FrameAnalysis:
    """analyze_frame (full-frame detection, no tracking) with the pipeline's backend and crop settings,
    on a fresh detector of the pipeline's detector config."""
    return analyze_frame(frame, create_face_detector(pipeline.config.detector), pipeline.backend,
                         pipeline.config.crop_margin, crop_mode=pipeline.config.crop_mode, mirror=pipeline.mirror)
