"""The displayed image of the bundled patient reads like a clinical fluoroscopy image: measured
contrasts in the AP view of L1 with a needle on the celiac plexus trajectory and contrast at its tip."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.bundled import ensure_bundled
from simulator.core.anatomy import Anatomy
from simulator.core.carm import CArmPose
from simulator.core.spread import compute_spread
from simulator.imaging.fluoroscopy import ContrastGrid, ContrastScene, FluoroscopyRenderer, NeedleModel

ENTRY = np.array([-93.8, -113.3, -309.2])  # scenarios/celiac_plexus_posterior.yaml, left needle
TARGET = np.array([-43.0, -4.0, -275.0])
ISO = (-30.0, -4.0, -275.0)


@pytest.fixture(scope="module")
def scene():
    anatomy = Anatomy.load(ensure_bundled())
    renderer = FluoroscopyRenderer(anatomy, seed=3)
    d = (TARGET - ENTRY) / np.linalg.norm(TARGET - ENTRY)
    needle = NeedleModel.from_gauge(22, TARGET, direction=d, length_mm=150)
    spread = compute_spread(anatomy, TARGET, 10.0)
    contrast = ContrastScene(grids=[ContrastGrid.from_spread(spread, 240.0)])
    pose = CArmPose(isocenter_mm=ISO)
    return anatomy, renderer, needle, contrast, pose


def box_mean(img, u, v, half=4):
    r, c = int(round(v)), int(round(u))
    return float(img[r - half:r + half + 1, c - half:c + half + 1].astype(float).mean())


def test_ap_view_bone_soft_tissue_and_needle(scene):
    anatomy, renderer, needle, _, pose = scene
    img = renderer.render(pose, [needle], quality="full", quanta_per_pixel=0).image
    l1 = anatomy.centroid_mm("vertebrae_L1")
    # paraspinal soft tissue at the same level, 55 mm to the patient's right of the body's centre
    soft = l1 + np.array([55.0, 0.0, 0.0])
    (ub, us), (vb, vs) = pose.world_to_pixel(np.stack([l1, soft]))
    bone, tissue = box_mean(img, ub, vb), box_mean(img, us, vs)
    # bone darker than soft tissue by a clear but not harsh step; neither clipped
    assert 40 <= tissue - bone <= 170, (bone, tissue)
    assert bone > 25 and tissue < 245
    # the exposed field uses the grey scale: no more than 5 % of it is burnt out white or black
    field = pose.field_mask(img.shape[0])
    vals = img[field]
    assert np.mean(vals >= 254) < 0.05 and np.mean(vals <= 1) < 0.05
    # the needle line is the darkest feature: its pixels are darker than 99.5 % of the field
    mid = 0.5 * (TARGET + (TARGET - needle.axis * 60.0))
    um, vm = pose.world_to_pixel(mid[None])
    r, c = int(round(float(vm[0]))), int(round(float(um[0])))
    needle_grey = float(img[r - 2:r + 3, c - 2:c + 3].min())
    assert needle_grey <= np.percentile(vals, 0.5), needle_grey


def test_contrast_cloud_is_graded_and_soft(scene):
    anatomy, renderer, needle, contrast, pose = scene
    plain = renderer.render(pose, [], quality="full", quanta_per_pixel=0).image.astype(float)
    img = renderer.render(pose, [], contrast, time_s=5.0, quality="full", quanta_per_pixel=0).image.astype(float)
    diff = plain - img  # darkening by the contrast
    field = pose.field_mask(img.shape[0])
    cloud = (diff > 8) & field
    assert cloud.sum() > 500  # a cloud, not a speck
    ut, vt = pose.world_to_pixel(TARGET[None])
    rr, cc = np.nonzero(cloud)
    dist = np.hypot(rr - float(vt[0]), cc - float(ut[0]))
    inner = diff[rr[dist <= np.percentile(dist, 25)], cc[dist <= np.percentile(dist, 25)]].mean()
    outer = diff[rr[dist >= np.percentile(dist, 75)], cc[dist >= np.percentile(dist, 75)]].mean()
    assert inner > outer + 25, (inner, outer)  # darkest at the tip, thinning outwards
    # no solid black block: the cloud keeps grey levels, and most of it is not black
    assert np.mean(img[cloud] <= 2) < 0.2
    assert np.ptp(img[cloud]) > 60
