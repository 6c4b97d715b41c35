#include "wbc/qp_solver.hpp"
// Before proxsuite: see the header.
#include "wbc/eigen_scaled_block.hpp"

#include <proxsuite/proxqp/dense/dense.hpp>
#include <cstdio>  // DEBUG
#include <cstdlib>  // DEBUG

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
  s.initial_guess = proxsuite::proxqp::InitialGuessStatus::WARM_START_WITH_PREVIOUS_RESULT;
  // Infeasibility certificates are accepted only when they are accurate. At ProxQP's default
  // (1e-4) the G1 problem was declared primal-infeasible on states where an LP finds 5 units of
  // slack in every constraint (tests/wbc). A truly infeasible problem still fails; it runs to
  // max_iter instead.
  s.eps_primal_inf = 1e-9;
  s.eps_dual_inf = 1e-9;
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

DenseQp::Result DenseQp::solve(bool& cold_restart, bool allow_cold_retry) {
  Impl& I = *impl_;
  using proxsuite::nullopt;
  // ProxQP's update() copies vectors through an .eval() temporary (an allocation): the vectors go
  // straight into its model (same sizes: plain copies) and only the matrices (row-major
  // references, no copy) go through update(), which re-runs its setup from the model.
  auto push = [&I]() {
    I.qp.model.g = I.g;
    I.qp.model.b = I.b;
    I.qp.model.l = I.l;
    I.qp.model.u = I.u;
    I.qp.update(I.H, nullopt, I.A, nullopt, I.C, nullopt, nullopt, I.lbox, I.ubox, false);
  };
  using proxsuite::proxqp::InitialGuessStatus;
  if (cold_next_) I.qp.settings.initial_guess = InitialGuessStatus::EQUALITY_CONSTRAINED_INITIAL_GUESS;
  push();
  I.qp.solve();
  if (cold_next_) {
    I.qp.settings.initial_guess = InitialGuessStatus::WARM_START_WITH_PREVIOUS_RESULT;
    cold_next_ = false;
  }
  cold_restart = false;
  if (allow_cold_retry && I.qp.results.info.status != proxsuite::proxqp::QPSolverOutput::PROXQP_SOLVED) {
    // A warm start from a very different previous solution (a target step) can mislead the
    // solver's infeasibility check: retry once from the equality-constrained initial guess.
    I.qp.settings.initial_guess = proxsuite::proxqp::InitialGuessStatus::EQUALITY_CONSTRAINED_INITIAL_GUESS;
    I.qp.solve();
    I.qp.settings.initial_guess = proxsuite::proxqp::InitialGuessStatus::WARM_START_WITH_PREVIOUS_RESULT;
    cold_restart = true;
  }
  if (getenv("VQP_DUMP") && I.qp.results.info.status != proxsuite::proxqp::QPSolverOutput::PROXQP_SOLVED) {  // DEBUG
    FILE* f = fopen(getenv("VQP_DUMP"), "wb");
    int64_t hdr[3] = {I.H.rows(), I.A.rows(), I.C.rows()};
    fwrite(hdr, 8, 3, f);
    fwrite(I.H.data(), 8, I.H.size(), f); fwrite(I.g.data(), 8, I.g.size(), f);
    fwrite(I.A.data(), 8, I.A.size(), f); fwrite(I.b.data(), 8, I.b.size(), f);
    fwrite(I.C.data(), 8, I.C.size(), f); fwrite(I.l.data(), 8, I.l.size(), f); fwrite(I.u.data(), 8, I.u.size(), f);
    fwrite(I.lbox.data(), 8, I.lbox.size(), f); fwrite(I.ubox.data(), 8, I.ubox.size(), f);
    fclose(f);
    fprintf(stderr, "QP failed: status %d iter %d\n", (int)I.qp.results.info.status, (int)I.qp.results.info.iter);
  }
  Result r;
  const auto& info = I.qp.results.info;
  r.status = static_cast<int>(info.status);
  r.solved = info.status == proxsuite::proxqp::QPSolverOutput::PROXQP_SOLVED && I.qp.results.x.allFinite();
  r.iterations = static_cast<int>(info.iter);
  r.primal_residual = info.pri_res;
  r.dual_residual = info.dua_res;
  return r;
}

}  // namespace vertebra
