"""The kinematic and dynamic model the bench checks against (pinocchio, off the tick): the robot's
URDF with a free-floating base, joints addressed in motor order, the base placed from the IMU's
orientation (the hoisted robot's base hangs; its position does not change gravity torques).

* joint_inertia(q, j): the joint's own inertia at a configuration, with the rotor's armature (the
  robot config's sim.joint_dynamics, the published reflected inertia).
* gravity(q, quat_imu): the joint torques that hold the links beyond each joint against gravity
  with the base held (the floating-base gravity vector's joint rows).
* base_reaction(q, j): the hoisted base's angular velocity (IMU frame) per unit velocity of joint j
  (angular momentum conservation: A_base w_base + A_j dq_j = 0, A the centroidal map's angular rows).
* joint_torques(...): the inverse dynamics of the hanging robot with its base moving as its IMU says.
"""

from __future__ import annotations

import re

import numpy as np
import pinocchio as pin

from vertebra.runtime.config import RobotConfig


class BenchModel:
    def __init__(self, cfg: RobotConfig):
        self.cfg = cfg
        self.model = pin.buildModelFromUrdf(str(cfg.urdf_path), pin.JointModelFreeFlyer())
        self.data = self.model.createData()
        self.idx_q, self.idx_v = [], []
        for name in cfg.joint_names:
            jid = self.model.getJointId(name)
            self.idx_q.append(self.model.joints[jid].idx_q)
            self.idx_v.append(self.model.joints[jid].idx_v)
        self.armature = np.zeros(cfg.n_joints)
        for i, name in enumerate(cfg.joint_names):
            for d in cfg.sim.joint_dynamics:
                if re.search(d.match, name):
                    self.armature[i] = d.armature_kg_m2
                    break
        fid = self.model.getFrameId(cfg.imu_frame)
        self.R_base_imu = self.model.frames[fid].placement.rotation.copy()  # the IMU in its parent (the base)
        self.imu_parent_is_base = self.model.frames[fid].parentJoint == 1
        self.p_base_imu = self.model.frames[fid].placement.translation.copy()  # the IMU's lever arm
        self.model_no_gravity = self.model.copy()  # joint_torques(): gravity enters as the IMU's specific force
        self.model_no_gravity.gravity.linear[:] = 0.0
        self.data_no_gravity = self.model_no_gravity.createData()

    def _q(self, q_joints: np.ndarray, quat_imu_wxyz: np.ndarray | None = None) -> np.ndarray:
        q = pin.neutral(self.model)
        q[2] = 1.0
        if quat_imu_wxyz is not None:
            w, x, y, z = quat_imu_wxyz
            R_world_imu = pin.Quaternion(w, x, y, z).normalized().toRotationMatrix()
            R = R_world_imu @ self.R_base_imu.T
            qu = pin.Quaternion(R)
            q[3:7] = [qu.x, qu.y, qu.z, qu.w]
        for i, k in enumerate(self.idx_q):
            q[k] = q_joints[i]
        return q

    def joint_inertia(self, q_joints: np.ndarray, j: int) -> float:
        M = pin.crba(self.model, self.data, self._q(q_joints))
        v = self.idx_v[j]
        return float(M[v, v] + self.armature[j])

    def gravity(self, q_joints: np.ndarray, quat_imu_wxyz: np.ndarray) -> np.ndarray:
        g = pin.computeGeneralizedGravity(self.model, self.data, self._q(q_joints, quat_imu_wxyz))
        return np.asarray([g[v] for v in self.idx_v])

    def base_reaction(self, q_joints: np.ndarray, j: int) -> np.ndarray:
        """The hoisted base's angular velocity (IMU frame) per unit velocity of joint j: the hoist holds
        the base's position, so only the angular momentum is conserved over a quick motion."""
        q = self._q(q_joints)
        A = pin.computeCentroidalMap(self.model, self.data, q)[3:6]
        w_base = np.linalg.solve(A[:, 3:6], -A[:, self.idx_v[j]])  # the free-flyer's angular velocity, base frame
        return self.R_base_imu.T @ w_base


    def joint_torques(self, q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, gyro: np.ndarray, gyro_rate: np.ndarray,
                      acc: np.ndarray) -> np.ndarray:
        """Inverse dynamics of the hanging robot at one sample, in motor order: the joint torques that
        make the joints move as measured while the base moves as its IMU says (angular velocity, its
        rate, and the specific force, which carries gravity: the model's own gravity is off). The
        base's linear velocity is taken as zero (a hoisted base barely translates)."""
        m, d = self.model_no_gravity, self.data_no_gravity
        v = np.zeros(m.nv)
        a = np.zeros(m.nv)
        R = self.R_base_imu
        w, alpha, r = R @ gyro, R @ gyro_rate, self.p_base_imu
        v[3:6] = w
        # the base origin's acceleration from the IMU's (lever arm r): a_o = a_imu - alpha x r - w x (w x r)
        a[0:3] = R @ acc - np.cross(alpha, r) - np.cross(w, np.cross(w, r))
        a[3:6] = alpha
        for i, k in enumerate(self.idx_v):
            v[k] = dq[i]
            a[k] = ddq[i]
        tau = pin.rnea(m, d, self._q(q), v, a)
        return np.asarray([tau[k] for k in self.idx_v]) + self.armature * ddq
