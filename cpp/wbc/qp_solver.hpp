// DenseQp: the whole-body controller's ProxQP (dense, box constraints) behind a small interface,
// built as its own shared library (vertebra_qp, see CMakeLists.txt) so that it can use the CPU's
// vector instructions while the rest of the extension stays baseline x86-64. The problem matrices live
// here (row-major, as ProxQP takes them: no copies) and the caller fills them in place.
// solve() is [tick]: no allocation.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <memory>

namespace vertebra {

class __attribute__((visibility("default"))) DenseQp {
 public:
  using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  struct Result {
    bool solved = false;
    bool capped = false;  // stopped by its iteration cap, unsolved
    int status = 0;  // proxsuite QPSolverOutput
    int iterations = 0;        // inner iterations, as ProxQP counts them
    int outer_iterations = 0;
    double primal_residual = 0, dual_residual = 0;
  };
  static constexpr double kFree = 1e6;  // "unbounded": bounds must stay finite for the solver
  // backend: 0 automatic, 1 primal-dual LDLT, 2 primal LDLT.
  DenseQp(int n, int n_eq, int n_in, int backend, double eps_abs, int max_iter);
  ~DenseQp();

  RowMat& H();
  RowMat& A();
  RowMat& C();
  Eigen::VectorXd& g();
  Eigen::VectorXd& b();
  Eigen::VectorXd& l();
  Eigen::VectorXd& u();
  Eigen::VectorXd& lbox();
  Eigen::VectorXd& ubox();

  // Solve the problem now in the matrices, warm-started from the previous solution (or cold after
  // start_cold()). ProxQP counts its inner iterations (Result::iterations), over an outer loop of
  // at most `max_outer` iterations each running at most `max_inner` + 1 inner ones, so
  // Result::iterations <= max_outer * (max_inner + 1): that product is the solve's hard cap.
  // 0: the constructor's max_iter outer, ProxQP's default inner.
  Result solve(int max_outer = 0, int max_inner = 0);
  // The next solve starts from the equality-constrained initial guess instead of the previous
  // solution (the caller changed what the variables mean).
  void start_cold() { cold_next_ = true; }
  void set_eps_abs(double eps);  // configuration time
  const Eigen::VectorXd& x() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool cold_next_ = false;
  int default_max_iter_ = 50, default_max_iter_in_ = 1500;
};

// How one solve may spend `iterations` (>= 2) of ProxQP's inner iterations: outer iterations first
// (as many as fit, at least one, at most max_outer), then each of at most `inner` + 1 inner ones
// (at most max_inner + 1), so that outer * (inner + 1) <= iterations.
struct SolveCap {
  int outer = 1, inner = 1;
};
inline SolveCap solve_cap(int iterations, int max_outer, int max_inner) {
  SolveCap c;
  c.outer = std::clamp(iterations / 2, 1, std::max(max_outer, 1));
  c.inner = std::clamp(iterations / c.outer - 1, 1, std::max(max_inner, 1));
  return c;
}

}  // namespace vertebra
