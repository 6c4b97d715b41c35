#include "wbc/qp_solver.hpp"
// Before proxsuite: see the header.
#include "wbc/eigen_scaled_block.hpp"

#include <proxsuite/proxqp/dense/dense.hpp>

namespace vertebra {

struct DenseQp::Impl {
  RowMat H, A, C;
  Eigen::VectorXd g, b, l, u, lbox, ubox;
  proxsuite::proxqp::dense::QP<double> qp;
  Impl(int n, int neq, int nin, int backend)
      : qp(n, neq, nin, true,
           backend == 1 ? proxsuite::proxqp::DenseBackend::PrimalDualLDLT
                        : (backend == 2 ? proxsuite::proxqp::DenseBackend::PrimalLDLT
                                        : proxsuite::proxqp::DenseBackend::Automatic)) {}
};

DenseQp::DenseQp(int n, int neq, int nin, int backend, double eps_abs, int max_iter)
    : impl_(std::make_unique<Impl>(n, neq, nin, backend)) {
  Impl& I = *impl_;
  I.H = RowMat::Identity(n, n);
  I.A = RowMat::Zero(neq, n);
  I.C = RowMat::Zero(nin, n);
  I.g = Eigen::VectorXd::Zero(n);
  I.b = Eigen::VectorXd::Zero(neq);
  I.l = Eigen::VectorXd::Constant(nin, -kFree);
  I.u = Eigen::VectorXd::Constant(nin, kFree);
  I.lbox = Eigen::VectorXd::Constant(n, -kFree);
  I.ubox = Eigen::VectorXd::Constant(n, kFree);
  auto& s = I.qp.settings;
  s.eps_abs = eps_abs;
  s.eps_rel = 0;
  s.max_iter = max_iter;
  default_max_iter_ = max_iter;
  default_max_iter_in_ = static_cast<int>(s.max_iter_in);
  s.initial_guess = proxsuite::proxqp::InitialGuessStatus::WARM_START_WITH_PREVIOUS_RESULT;
  // Infeasibility certificates must be accurate, but not so strict that a really infeasible
  // problem runs to max_iter (tens of ms). At ProxQP's default (1e-4) the G1 problem was declared
  // primal-infeasible on states where an LP finds 5 units of slack in every constraint
  // (tests/wbc); 1e-6 accepts those and still stops an infeasible one within a few ms.
  s.eps_primal_inf = 1e-6;
  s.eps_dual_inf = 1e-6;
  s.verbose = false;
  s.compute_timings = false;
  // Initialise once here (allocates the solver's workspace) on a trivial problem.
  I.qp.init(I.H, I.g, I.A, I.b, I.C, I.l, I.u, I.lbox, I.ubox);
  I.qp.solve();
}

DenseQp::~DenseQp() = default;

DenseQp::RowMat& DenseQp::H() { return impl_->H; }
DenseQp::RowMat& DenseQp::A() { return impl_->A; }
DenseQp::RowMat& DenseQp::C() { return impl_->C; }
Eigen::VectorXd& DenseQp::g() { return impl_->g; }
Eigen::VectorXd& DenseQp::b() { return impl_->b; }
Eigen::VectorXd& DenseQp::l() { return impl_->l; }
Eigen::VectorXd& DenseQp::u() { return impl_->u; }
Eigen::VectorXd& DenseQp::lbox() { return impl_->lbox; }
Eigen::VectorXd& DenseQp::ubox() { return impl_->ubox; }
const Eigen::VectorXd& DenseQp::x() const { return impl_->qp.results.x; }

void DenseQp::set_eps_abs(double eps) { impl_->qp.settings.eps_abs = eps; }

DenseQp::Result DenseQp::solve(int max_outer, int max_inner) {
  Impl& I = *impl_;
  I.qp.settings.max_iter = max_outer > 0 ? max_outer : default_max_iter_;
  I.qp.settings.max_iter_in = max_inner > 0 ? max_inner : default_max_iter_in_;
  using proxsuite::nullopt;
  using proxsuite::proxqp::InitialGuessStatus;
  // The initial guess is read by update()'s setup: set it first.
  I.qp.settings.initial_guess = cold_next_ ? InitialGuessStatus::EQUALITY_CONSTRAINED_INITIAL_GUESS
                                           : InitialGuessStatus::WARM_START_WITH_PREVIOUS_RESULT;
  cold_next_ = false;
  // ProxQP's update() copies vectors through an .eval() temporary (an allocation): the vectors go
  // straight into its model (same sizes: plain copies) and only the matrices (row-major
  // references, no copy) go through update(), which re-runs its setup from the model.
  I.qp.model.g = I.g;
  I.qp.model.b = I.b;
  I.qp.model.l = I.l;
  I.qp.model.u = I.u;
  I.qp.update(I.H, nullopt, I.A, nullopt, I.C, nullopt, nullopt, I.lbox, I.ubox, false);
  I.qp.solve();
  Result r;
  const auto& info = I.qp.results.info;
  r.status = static_cast<int>(info.status);
  r.solved = info.status == proxsuite::proxqp::QPSolverOutput::PROXQP_SOLVED && I.qp.results.x.allFinite();
  r.capped = info.status == proxsuite::proxqp::QPSolverOutput::PROXQP_MAX_ITER_REACHED;
  r.iterations = static_cast<int>(info.iter);
  r.outer_iterations = static_cast<int>(info.iter_ext);
  r.primal_residual = info.pri_res;
  r.dual_residual = info.dua_res;
  return r;
}

}  // namespace vertebra
