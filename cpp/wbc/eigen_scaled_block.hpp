// Lets Eigen's matrix-vector kernels read a block of a scaled matrix expression in place,
// without first copying it into a heap temporary.
//
// Why: ProxQP's LDLT update (proxsuite/linalg/dense/modify.hpp, ldlt_insert_rows_and_cols) computes
// `l21 += -1 * (l20 * d0xl10T)`. When the active set grows by two or more constraints at once and
// the factor holds exactly one row after the insertion point, l21 is a single row. Eigen 3.4 then
// falls back from GEMM to GEMV on `(-1 * l20).row(0)`. Its blas_traits unwrap a scaled
// expression but not a Block of one, so the row goes into a heap-allocated temporary. That is
// one malloc on the tick, in an update that depends on the data.
//
// This partial specialisation mirrors Eigen's own "pop scalar multiple" rule (Eigen/src/Core/
// util/BlasUtil.h) one level down. A block of (scalar * X) is handed to the kernel as the same
// block of X, with the scalar passed as the kernel's factor. The arithmetic is unchanged: it is
// the same product, just without the copy.
//
// Include it before any Eigen product is instantiated. Only qp_solver.cpp includes it; it builds
// into the private, hidden-symbol vertebra_qp library.
#pragma once

#include <Eigen/Core>

namespace Eigen {
namespace internal {

template <typename Scalar, typename Plain, typename NestedXpr, int R, int C, bool InnerPanel>
struct blas_traits<
    Block<const CwiseBinaryOp<scalar_product_op<Scalar>, const CwiseNullaryOp<scalar_constant_op<Scalar>, Plain>,
                              NestedXpr>,
          R, C, InnerPanel>> {
  using XprType = Block<const CwiseBinaryOp<scalar_product_op<Scalar>,
                                            const CwiseNullaryOp<scalar_constant_op<Scalar>, Plain>, NestedXpr>,
                        R, C, InnerPanel>;
  using Inner = typename remove_all<NestedXpr>::type;
  using BlockOfInner = Block<const Inner, R, C, InnerPanel>;
  using Base = blas_traits<BlockOfInner>;
  typedef BlockOfInner ExtractType;   // by value: a block is a view
  typedef BlockOfInner _ExtractType;  // the name Eigen 3.4's traits use
  enum {
    IsComplex = NumTraits<Scalar>::IsComplex,
    IsTransposed = false,
    NeedToConjugate = false,
    HasUsableDirectAccess = Base::HasUsableDirectAccess,
    HasScalarFactor = true
  };
  typedef typename conditional<bool(HasUsableDirectAccess), ExtractType, typename BlockOfInner::PlainObject>::type
      DirectLinearAccessType;
  static inline ExtractType extract(const XprType& x) {
    return BlockOfInner(x.nestedExpression().rhs(), x.startRow(), x.startCol(), x.rows(), x.cols());
  }
  static inline Scalar extractScalarFactor(const XprType& x) {
    return x.nestedExpression().lhs().functor().m_other;
  }
};

}  // namespace internal
}  // namespace Eigen
