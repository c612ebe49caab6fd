"""Abuse limits for GraphQL queries: depth and node cost, measured on the AST before execution.

Depth counts the fields on the longest path from the root to a leaf; Relay's `edges`, `node`
and `pageInfo` do not count, so `customers { edges { node { id } } }` is 2 deep. Cost is the
most nodes the response can hold: a connection costs its `first` (the schema default when
absent) and multiplies everything selected inside it, any other object field costs 1, and the
Relay plumbing costs nothing. Introspection (`__schema`, `__type`) is free: its size is bounded
by the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.values import get_argument_values

# (type name suffix, field): Relay plumbing, which adds neither a level nor a node.
RELAY_PLUMBING = {("Connection", "edges"), ("Connection", "pageInfo"), ("Edge", "node")}


@dataclass(frozen=True)
class QueryShape:
    depth: int
    cost: int


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = 6
    max_cost: int = 5000

    def violation(self, shape: QueryShape) -> tuple[str, GraphQLError] | None:
        """The limit the query breaks (its name and a client-facing error), or None."""
        if shape.depth > self.max_depth:
            return "depth", GraphQLError(
                f"query depth {shape.depth} exceeds the depth limit of {self.max_depth}: "
                "nest fewer levels (Relay's edges, node and pageInfo do not count)",
                extensions={
                    "code": "QUERY_TOO_DEEP",
                    "depth": shape.depth,
                    "maxDepth": self.max_depth,
                },
            )
        if shape.cost > self.max_cost:
            return "cost", GraphQLError(
                f"query cost {shape.cost} exceeds the cost limit of {self.max_cost}: "
                "cost is the most nodes the query can return, `first` multiplied down nested "
                "connections; ask for smaller pages or fewer nested connections",
                extensions={
                    "code": "QUERY_TOO_COSTLY",
                    "cost": shape.cost,
                    "maxCost": self.max_cost,
                },
            )
        return None


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
) -> QueryShape:
    """Depth and cost of `operation`; the document must already have passed validation.

    `variables` are the coerced variable values. Raises GraphQLError for arguments that
    cannot be coerced.
    """
    root = schema.get_root_type(operation.operation)
    if root is None:
        return QueryShape(0, 0)
    return _Measure(schema, document, variables).selection_set(operation.selection_set, root)


class _Measure:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]
    ) -> None:
        self._schema = schema
        self._variables = variables
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        # Cost is linear in the enclosing multiplier, so each fragment is measured once:
        # a document that spreads fragments into fragments cannot make the walk exponential.
        self._measured: dict[str, QueryShape] = {}

    def selection_set(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType
    ) -> QueryShape:
        depth = cost = 0
        for selection in selection_set.selections:
            shape = self._selection(selection, parent)
            depth, cost = max(depth, shape.depth), cost + shape.cost
        return QueryShape(depth, cost)

    def _selection(self, selection: SelectionNode, parent: GraphQLNamedType) -> QueryShape:
        if isinstance(selection, FieldNode):
            return self._field(selection, parent)
        if isinstance(selection, InlineFragmentNode):
            condition = (
                self._schema.get_type(selection.type_condition.name.value)
                if selection.type_condition
                else parent
            )
            return self.selection_set(selection.selection_set, condition or parent)
        if isinstance(selection, FragmentSpreadNode):
            return self._fragment(selection.name.value)
        return QueryShape(0, 0)

    def _fragment(self, name: str) -> QueryShape:
        if name not in self._measured:
            fragment = self._fragments[name]
            condition = self._schema.get_type(fragment.type_condition.name.value)
            self._measured[name] = (
                self.selection_set(fragment.selection_set, condition)
                if condition
                else QueryShape(0, 0)
            )
        return self._measured[name]

    def _field(self, node: FieldNode, parent: GraphQLNamedType) -> QueryShape:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, GraphQLObjectType | GraphQLInterfaceType
        ):
            return QueryShape(0, 0)  # introspection is bounded by the schema
        field = parent.fields.get(name)
        if field is None:
            return QueryShape(0, 0)
        if node.selection_set is None:
            return QueryShape(1, 0)
        returns = get_named_type(field.type)
        inner = self.selection_set(node.selection_set, returns)
        if any(
            parent.name.endswith(suffix) and name == plumbing for suffix, plumbing in RELAY_PLUMBING
        ):
            return inner
        if returns.name.endswith("Connection"):
            first = self._first(node, field)
            return QueryShape(1 + inner.depth, first * (1 + inner.cost))
        return QueryShape(1 + inner.depth, 1 + inner.cost)

    def _first(self, node: FieldNode, field: GraphQLField) -> int:
        argument = field.args.get("first")
        if argument is None:
            return 1
        value = get_argument_values(field, node, self._variables).get("first")
        if value is None:
            # An explicit null means the default, as the resolvers treat it.
            value = argument.default_value
        return max(0, value) if isinstance(value, int) else 1
