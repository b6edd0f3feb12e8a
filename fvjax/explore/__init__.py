"""Exploration tree (seeds 000/003): mutate configurations, log them as a tree, choose parents by UCB."""

from .journal import JournalError, append_event, node_event, nodes_of, read_events, render_log
from .proposers import FileProposer, NeedProposals, Proposal, Proposer, SweepProposer, parse_space
from .runner import ExploreSettings, explore, robustness
from .tree import Node, Score, classify, format_entry, format_scores, parse_log, ucb_scores

__all__ = ["ExploreSettings", "FileProposer", "JournalError", "NeedProposals", "Node", "Proposal", "Proposer", "Score",
           "SweepProposer", "classify", "explore", "format_entry", "format_scores", "parse_log",
           "parse_space", "robustness", "ucb_scores", "append_event", "node_event", "nodes_of",
           "read_events", "render_log"]
