// Whole-body controller: exact elimination of the contact rows (wbc_impl.hpp).
#include "wbc/wbc_impl.hpp"

namespace vertebra::wbc_detail {

// The eliminated problem without the joint-limit acceleration bounds: the free joints' boxes and
// the dependent joints' bound rows (see the solve in update()).
void relax_joint_bounds_eliminated(WholeBodyController::Impl& I, int nj) {
  DenseQp& q = *I.qpw;
  for (int j = 0; j < I.nf; ++j)
    if (I.free_[j] < nj) {
      q.lbox()[j] = -kFree;
      q.ubox()[j] = kFree;
    }
  for (int j = 0; j < I.nd; ++j)
    if (I.dep[j] < nj) {
      q.l()[I.nin + j] = -kFree;
      q.u()[I.nin + j] = kFree;
    }
}

// The y problem's cost into its QP: H = Jr' Jr + diag(dy), g = -Jr' er + cy.
void y_cost(WholeBodyController::Impl& I) {
  auto Jr = I.Jr.topRows(I.task_rows);
  I.H.setZero();
  I.H.selfadjointView<Eigen::Lower>().rankUpdate(Jr.transpose());
  I.H.triangularView<Eigen::StrictlyUpper>() = I.H.transpose();
  I.H.diagonal() += I.dy;
  I.g = I.cy;
  I.g.noalias() -= Jr.transpose() * I.er.head(I.task_rows);
}

// Contact elimination. The contact rows  A y = b  are solved for the dependent components:
// y_dep = Ad^-1 (b - Af w) = k0 - K w. For an active contact these are its leg joints (the leg
// Jacobian and the base coupling make Ad, m x m per contact); for a released one, its force
// (f = 0). The QP given to ProxQP then has nf variables and no equalities; the dependent
// components' bounds become inequality rows. Returns false (the y problem is solved instead)
// when Ad is ill-conditioned, e.g. a knee near full extension.
bool eliminate_contacts(WholeBodyController::Impl& I, int nj) {
  const int nd = I.nd, nf = I.nf, nin = I.nin, m = nd / static_cast<int>(I.contact_fid.size());
  uint32_t key = 0;
  {  // partition of y
    int k = 0;
    for (size_t c = 0; c < I.contact_fid.size(); ++c) {
      const bool on = I.contact_on[c];
      key |= (on ? 1u : 0u) << c;
      for (int j = 0; j < m; ++j) I.dep[k++] = on ? I.chain_y[c][j] : nj + static_cast<int>(c) * m + j;
    }
    std::fill(I.is_dep.begin(), I.is_dep.end(), 0);
    for (int i : I.dep) I.is_dep[i] = 1;
    int f = 0;
    for (int i = 0; i < I.nr; ++i)
      if (!I.is_dep[i]) I.free_[f++] = i;
  }
  // Gauss-Jordan with partial pivoting on [Ad | Af | b] (nd x (nr + 1), row-major: the row
  // operations are contiguous). A pivot below kMinPivot times the largest one means Ad is
  // ill-conditioned: give up (the caller solves the y problem instead).
  constexpr double kMinPivot = 1e-4;
  auto& G = I.aug;
  for (int r = 0; r < nd; ++r) {
    for (int j = 0; j < nd; ++j) G(r, j) = I.A(r, I.dep[j]);
    for (int j = 0; j < nf; ++j) G(r, nd + j) = I.A(r, I.free_[j]);
    G(r, nd + nf) = I.b[r];
  }
  double max_pivot = 0.0;
  const int width = nd + nf + 1;
  for (int k = 0; k < nd; ++k) {
    int p = k;
    for (int r = k + 1; r < nd; ++r)
      if (std::abs(G(r, k)) > std::abs(G(p, k))) p = r;
    const double piv = G(p, k);
    max_pivot = std::max(max_pivot, std::abs(piv));
    if (!(std::abs(piv) > kMinPivot * max_pivot) || !std::isfinite(piv)) {
      I.w_key = ~0u;  // the next eliminated solve starts cold
      return false;
    }
    if (p != k) G.row(p).swap(G.row(k));
    // Plain loops over contiguous rows (the compiler vectorises them): Eigen's per-call
    // overhead on these short dynamic rows was most of the cost.
    double* rk = &G(k, 0);
    const double inv = 1.0 / piv;
    for (int c = k; c < width; ++c) rk[c] *= inv;
    for (int r = 0; r < nd; ++r) {
      if (r == k) continue;
      double* rr = &G(r, 0);
      const double f = rr[k];
      if (f == 0.0) continue;
      for (int c = k; c < width; ++c) rr[c] -= f * rk[c];
    }
  }
  I.K = G.block(0, nd, nd, nf);
  I.k0 = G.col(nd + nf);

  // Cost rows: [Jr_free - Jr_dep K] w - (er - Jr_dep k0); then one row per dependent component
  // for its diagonal term 1/2 d (y_i - t_i)^2, t_i = -c_i / d.
  const int rows = I.task_rows;
  for (int j = 0; j < nf; ++j) I.Jrf.col(j).head(rows) = I.Jr.col(I.free_[j]).head(rows);
  for (int j = 0; j < nd; ++j) I.Jrd.col(j).head(rows) = I.Jr.col(I.dep[j]).head(rows);
  auto Jw = I.Jw_w.topRows(rows + nd);
  auto ew = I.ew.head(rows + nd);
  Jw.topRows(rows) = I.Jrf.topRows(rows);
  Jw.topRows(rows).noalias() -= I.Jrd.topRows(rows) * I.K;
  ew.head(rows) = I.er.head(rows);
  ew.head(rows).noalias() -= I.Jrd.topRows(rows) * I.k0;
  for (int j = 0; j < nd; ++j) {
    const double dj = I.dy[I.dep[j]];
    if (!(dj > 0.0)) {  // no diagonal term (a zero weight in the config): an empty row
      Jw.row(rows + j).setZero();
      ew[rows + j] = 0.0;
      continue;
    }
    const double sd = std::sqrt(dj);
    Jw.row(rows + j) = -sd * I.K.row(j);
    ew[rows + j] = sd * (-I.cy[I.dep[j]] / dj - I.k0[j]);
  }
  DenseQp& q = *I.qpw;
  q.H().noalias() = Jw.transpose() * Jw;
  for (int j = 0; j < nf; ++j) {
    q.H()(j, j) += I.dy[I.free_[j]];
    q.g()[j] = I.cy[I.free_[j]];
  }
  q.g().noalias() -= Jw.transpose() * ew;

  // Inequalities: the y rows on the free components, torque rows corrected for the dependent
  // ones (the cone rows never hold a dependent component: those are legs, or released forces
  // whose cone rows are idle); then the dependent components' bounds.
  auto& C = q.C();
  for (int r = 0; r < nin; ++r)
    for (int j = 0; j < nf; ++j) C(r, j) = I.C(r, I.free_[j]);
  // The rows on joint accelerations (torques, then keep-out) have dependent components; the cone
  // rows are on the forces only, whose dependent ones (released contacts') their idle rows ignore.
  const int nt = nj + I.nko;
  for (int r = 0; r < nt; ++r)
    for (int j = 0; j < nd; ++j) I.Cd(r, j) = I.C(r, I.dep[j]);
  C.topRows(nt).noalias() -= I.Cd * I.K;
  q.l().head(nin) = I.l;
  q.u().head(nin) = I.u;
  q.l().head(nt).noalias() -= I.Cd * I.k0;
  q.u().head(nt).noalias() -= I.Cd * I.k0;
  for (int j = 0; j < nd; ++j) {
    C.row(nin + j) = -I.K.row(j);
    q.l()[nin + j] = I.lbox[I.dep[j]] - I.k0[j];
    q.u()[nin + j] = I.ubox[I.dep[j]] - I.k0[j];
  }
  for (int j = 0; j < nf; ++j) {
    q.lbox()[j] = I.lbox[I.free_[j]];
    q.ubox()[j] = I.ubox[I.free_[j]];
  }
  if (key != I.w_key) {
    q.start_cold();  // the variables changed meaning: no warm start from the last solution
    I.w_key = key;
  }
  return true;
}

}  // namespace vertebra::wbc_detail
