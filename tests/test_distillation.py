"""The mask recipe's distillation (model-repo/recipes/train_mask.py `--teacher`): soft targets and their loss."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from recipes.train_mask import REPO, TEMPERATURE, Teacher, distillation_loss

TEACHER = REPO / "model-repo" / "mask_faceplane_single" / "model.onnx"


def test_soft_targets_are_the_teachers_probabilities_softened_by_the_temperature() -> None:
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (6, 64, 64, 3)).astype(np.float32))
    probs = ort.InferenceSession(str(TEACHER)).run(None, {"images": x.numpy()})[0]
    softened = probs ** (1 / TEMPERATURE)
    expected = softened / softened.sum(1, keepdims=True)

    got = Teacher(TEACHER).soft_targets(x).numpy()

    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.all(np.abs(got - 0.5) <= np.abs(probs - 0.5) + 1e-6)  # softer, never sharper


def test_the_loss_is_zero_at_the_teacher_and_pulls_the_student_towards_it() -> None:
    teacher = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    soft = torch.softmax(teacher.log() / TEMPERATURE, dim=1)

    assert float(distillation_loss(teacher.log(), soft)) < 1e-6

    student = torch.zeros(2, 2, requires_grad=True)  # undecided: 0.5 / 0.5
    loss = distillation_loss(student, soft)
    loss.backward()
    # T² · KL(teacher_T ‖ student_T), averaged over the batch
    expected = TEMPERATURE**2 * float((soft * (soft.log() - np.log(0.5))).sum(1).mean())
    assert abs(loss.item() - expected) < 1e-6
    step = -student.grad  # gradient descent raises the logit the teacher favours
    assert step[0, 0] > step[0, 1] and step[1, 1] > step[1, 0]
